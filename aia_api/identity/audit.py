"""``/v1/audit``: the tenant's security events, newest first."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aia_api.http.openapi import CURSOR, LIMIT, SECURED, Param, Reply, Tag, operation
from aia_api.http.params import page_limit, page_links
from aia_api.http.tenancy import require
from aia_api.identity.responses import AuditPage
from aia_api.identity.roles import Permission
from aia_api.services import services

__all__ = ["routes"]


_AUDIT = Tag("audit", "The tenant's security events.")
_ACTION = Param(
    "Action",
    {
        "name": "action",
        "in": "query",
        "required": False,
        "description": "Only events of these actions; repeat for several.",
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "items": {"type": "string"}},
    },
)
_OUTCOME = Param(
    "Outcome",
    {
        "name": "outcome",
        "in": "query",
        "required": False,
        "description": "Only events with this outcome.",
        "schema": {"type": "string", "enum": ["success", "failure", "locked"]},
    },
)


@operation(
    id="listAudit",
    summary="The tenant's security events",
    tag=_AUDIT,
    permission=Permission.AUDIT_READ,
    responses={200: Reply("Newest first; follow links.next for more.", AuditPage)},
    errors=(*SECURED, "400", "422"),
    description=(
        "Needs `audit:read`. Filter with `action` (repeat for several) and "
        "`outcome`; 400 for a cursor this API did not make."
    ),
    parameters=(_ACTION, _OUTCOME, LIMIT, CURSOR),
)
async def list_audit(request: Request) -> Response:
    principal = require(request, Permission.AUDIT_READ)
    params = request.query_params
    limit = page_limit(params)
    outcome = params.get("outcome") or None
    audit = services(request).audit
    items, cursor = await anyio.to_thread.run_sync(
        lambda: audit.list(
            principal.tenant,
            actions=params.getlist("action"),
            outcome=outcome,
            limit=limit,
            cursor=params.get("cursor") or None,
        )
    )
    return JSONResponse(
        {"items": items, "next_cursor": cursor, "links": page_links(request, cursor)}
    )


routes = [Route("/v1/audit", list_audit, methods=["GET"])]
