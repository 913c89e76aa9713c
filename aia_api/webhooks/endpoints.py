"""``/v1/webhooks``: endpoints, their secrets, and the event types they may follow."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.listing import Page, stored_page
from aia_api.http.openapi import (
    CURSOR,
    LIMIT,
    SECURED,
    WITH_BODY,
    Body,
    Reply,
    operation,
)
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import services
from aia_api.webhooks.audit import changes, record_change, snapshot, tenant_and_actor
from aia_api.webhooks.openapi import (
    ENDPOINT_ID,
    NEEDS,
    WEBHOOKS,
)
from aia_api.webhooks.requests import EndpointPatch, EndpointRequest
from aia_api.webhooks.responses import (
    EndpointPage,
    EndpointView,
    EventTypeList,
    NewEndpoint,
)
from aia_api.webhooks.views import endpoint_view
from aia_workers.db.webhooks import WebhookEndpoint
from aia_workers.webhooks.catalog import EVENT_TYPES
from aia_workers.webhooks.signing import new_secret
from aia_workers.webhooks.ssrf import BlockedDestination, check_literal
from aia_workers.webhooks.store import EndpointLimitError, WebhookRepository, store_secret

__all__ = ["routes"]


_BLOCKED = (
    " A URL whose host is a loopback, private, link-local, metadata or other non-public "
    "address, in any spelling (`2130706433`, `[::ffff:127.0.0.1]`, ...), is a 422 "
    "`webhook-url-blocked` naming the rule, unless `AIA_WEBHOOK_ALLOWED_NETWORKS` lets it; "
    "a host name is checked when each delivery resolves it."
)


def _refuse_blocked(url: str, allow: Sequence[str]) -> None:
    """A 422 naming the rule when ``url`` holds an address deliveries must not reach.

    A host name passes: deliveries resolve and check it on every attempt.
    """
    try:
        check_literal(url, allow=allow)
    except BlockedDestination as exc:
        raise Problem(
            422,
            "webhook-url-blocked",
            "Webhook URL not allowed",
            f"{exc}: deliveries never go to loopback, private, link-local, metadata or "
            "other non-public addresses unless AIA_WEBHOOK_ALLOWED_NETWORKS lets them",
            errors=[
                {"loc": ["url"], "pointer": "/url", "message": str(exc), "type": "blocked_address"}
            ],
            rule=exc.rule,
        ) from None


@operation(
    id="createWebhook",
    summary="Add a webhook endpoint",
    tag=WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={
        201: Reply("Created; the secret is shown this once.", NewEndpoint, headers=("Location",))
    },
    errors=(*SECURED, *WITH_BODY, "409"),
    description=(
        f"{NEEDS} Deliveries are signed per the Standard Webhooks spec "
        f"(`webhook-id`, `webhook-timestamp`, `webhook-signature`).{_BLOCKED} "
        "409 `webhook-endpoint-limit` when the tenant has "
        "`AIA_WEBHOOK_TENANT_MAX_ENDPOINTS` (50) endpoints already. "
        "Audited as `endpoint.create`."
    ),
    body=Body("Where to send which events.", EndpointRequest),
)
async def create_endpoint(request: Request) -> Response:
    tenant, actor = tenant_and_actor(request)
    svc = services(request)
    body = parse_model(EndpointRequest, await read_json(request, svc.settings.max_body_bytes))
    _refuse_blocked(body.url, svc.settings.webhook_allowed_networks)
    now = datetime.now(UTC)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()),
        tenant_id=tenant,
        url=body.url,
        description=body.description,
        events=body.events,
        enabled=True,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    store_secret(endpoint, svc.box, secret)

    def store() -> None:
        with svc.sessions.begin() as session:
            try:
                WebhookRepository(session, tenant).add(
                    endpoint, max_endpoints=svc.settings.webhook_tenant_max_endpoints
                )
            except EndpointLimitError as exc:
                raise Problem(
                    409,
                    "webhook-endpoint-limit",
                    "Too many webhook endpoints",
                    str(exc),
                    limit=exc.limit,
                ) from None
            record_change(
                session,
                request,
                "endpoint.create",
                tenant=tenant,
                actor=actor,
                detail={"endpoint_id": endpoint.id, **snapshot(endpoint)},
            )

    await anyio.to_thread.run_sync(store)
    view = {**endpoint_view(endpoint), "secret": secret}
    return json_reply(view, 201, {"Location": view["links"]["self"]})


@operation(
    id="listWebhooks",
    summary="List webhook endpoints",
    tag=WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("Newest first.", EndpointPage)},
    errors=(*SECURED, "400", "422"),
    description=NEEDS,
    parameters=(LIMIT, CURSOR),
)
async def list_endpoints(request: Request) -> Response:
    tenant, _ = tenant_and_actor(request)

    def fetch(session: Session, limit: int, cursor: str | None) -> Page[WebhookEndpoint]:
        return WebhookRepository(session, tenant).endpoints(limit=limit, cursor=cursor)

    return await stored_page(request, services(request).sessions, fetch, endpoint_view)


@operation(
    id="listWebhookEventTypes",
    summary="The events an endpoint can subscribe to",
    tag=WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("Each with the JSON Schema of its data.", EventTypeList)},
    errors=SECURED,
    description=NEEDS,
)
async def event_types(request: Request) -> Response:
    require(request, Permission.WEBHOOKS_MANAGE)
    return json_reply(
        {
            "items": [
                {
                    "name": t.name,
                    "description": t.description,
                    "schema": t.payload.model_json_schema(),
                }
                for t in EVENT_TYPES.values()
            ]
        }
    )


@operation(
    id="getWebhook",
    summary="A webhook endpoint",
    tag=WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("The endpoint (never its secret).", EndpointView)},
    errors=(*SECURED, "404"),
    description=NEEDS,
    parameters=(ENDPOINT_ID,),
)
async def get_endpoint(request: Request) -> Response:
    tenant, _ = tenant_and_actor(request)
    svc = services(request)
    endpoint_id = request.path_params["endpoint_id"]

    def load() -> dict[str, Any]:
        with svc.sessions() as session:
            return endpoint_view(WebhookRepository(session, tenant).endpoint(endpoint_id))

    return json_reply(await anyio.to_thread.run_sync(load))


@operation(
    id="updateWebhook",
    summary="Change an endpoint: url, events, description, enabled",
    tag=WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("Changed.", EndpointView)},
    errors=(*SECURED, *WITH_BODY, "404"),
    description=(
        f"{NEEDS} Enabling it again restarts the auto-disable clock.{_BLOCKED} "
        "Audited as `endpoint.update`, with each changed field."
    ),
    parameters=(ENDPOINT_ID,),
    body=Body("The fields to change.", EndpointPatch),
)
async def update_endpoint(request: Request) -> Response:
    tenant, actor = tenant_and_actor(request)
    svc = services(request)
    body = parse_model(EndpointPatch, await read_json(request, svc.settings.max_body_bytes))
    if body.url is not None:
        _refuse_blocked(body.url, svc.settings.webhook_allowed_networks)
    endpoint_id = request.path_params["endpoint_id"]

    def change() -> dict[str, Any]:
        with svc.sessions.begin() as session:
            endpoint = WebhookRepository(session, tenant).endpoint(endpoint_id)
            before = snapshot(endpoint)
            for field in ("url", "events", "description"):
                value = getattr(body, field)
                if value is not None:
                    setattr(endpoint, field, value)
            if body.enabled is not None and body.enabled != endpoint.enabled:
                endpoint.enabled = body.enabled
                # Re-enabled: a fresh start for the auto-disable clock.
                endpoint.disabled_reason = None if body.enabled else "disabled by a person"
                endpoint.failing_since = None
            endpoint.updated_at = datetime.now(UTC)
            record_change(
                session,
                request,
                "endpoint.update",
                tenant=tenant,
                actor=actor,
                detail={"endpoint_id": endpoint_id, "changes": changes(before, snapshot(endpoint))},
            )
            return endpoint_view(endpoint)

    return json_reply(await anyio.to_thread.run_sync(change))


@operation(
    id="deleteWebhook",
    summary="Remove an endpoint, its messages and attempts",
    tag=WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={204: Reply("Removed.")},
    errors=(*SECURED, "404"),
    description=f"{NEEDS} Audited as `endpoint.delete`.",
    parameters=(ENDPOINT_ID,),
)
async def delete_endpoint(request: Request) -> Response:
    tenant, actor = tenant_and_actor(request)
    svc = services(request)
    endpoint_id = request.path_params["endpoint_id"]

    def remove() -> None:
        with svc.sessions.begin() as session:
            repository = WebhookRepository(session, tenant)
            gone = snapshot(repository.endpoint(endpoint_id))
            repository.remove(endpoint_id)
            record_change(
                session,
                request,
                "endpoint.delete",
                tenant=tenant,
                actor=actor,
                detail={"endpoint_id": endpoint_id, **gone},
            )

    await anyio.to_thread.run_sync(remove)
    return Response(status_code=204)


@operation(
    id="rotateWebhookSecret",
    summary="Rotate the signing secret",
    tag=WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("The new secret, shown this once.", NewEndpoint)},
    errors=(*SECURED, "404"),
    description=(
        f"{NEEDS} The old secret keeps signing (a second signature) for "
        "`AIA_WEBHOOK_SECRET_GRACE_SECONDS`. Audited as `endpoint.rotate_secret` "
        "(never with a secret)."
    ),
    parameters=(ENDPOINT_ID,),
)
async def rotate_secret(request: Request) -> Response:
    tenant, actor = tenant_and_actor(request)
    svc = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    grace = timedelta(seconds=svc.settings.webhook_secret_grace_seconds)

    def rotate() -> dict[str, Any]:
        now = datetime.now(UTC)
        with svc.sessions.begin() as session:
            endpoint = WebhookRepository(session, tenant).endpoint(endpoint_id)
            secret = new_secret()
            store_secret(endpoint, svc.box, secret, keep_previous_until=now + grace)
            endpoint.updated_at = now
            record_change(
                session,
                request,
                "endpoint.rotate_secret",
                tenant=tenant,
                actor=actor,
                detail={
                    "endpoint_id": endpoint_id,
                    "previous_secret_expires_at": (now + grace).isoformat(),
                },
            )
            return {**endpoint_view(endpoint), "secret": secret}

    return json_reply(await anyio.to_thread.run_sync(rotate))


_ENDPOINT = "/v1/webhooks/{endpoint_id}"
routes = [
    Route("/v1/webhooks", create_endpoint, methods=["POST"]),
    Route("/v1/webhooks", list_endpoints, methods=["GET"]),
    # Before {endpoint_id}, which would take "event-types" for an id.
    Route("/v1/webhooks/event-types", event_types, methods=["GET"]),
    Route(_ENDPOINT, get_endpoint, methods=["GET"]),
    Route(_ENDPOINT, update_endpoint, methods=["PATCH"]),
    Route(_ENDPOINT, delete_endpoint, methods=["DELETE"]),
    Route(f"{_ENDPOINT}/rotate-secret", rotate_secret, methods=["POST"]),
]
