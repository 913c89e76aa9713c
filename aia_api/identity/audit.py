"""``/v1/audit``: the tenant's security events, newest first."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aia_api.http.params import page_limit, page_links
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import services

__all__ = ["routes"]

_MAX_PAGE = 200


async def list_audit(request: Request) -> Response:
    principal = require(request, Permission.AUDIT_READ)
    params = request.query_params
    limit = page_limit(params, _MAX_PAGE)
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
