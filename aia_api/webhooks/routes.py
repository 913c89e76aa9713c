"""``/v1/webhooks``: endpoints, their secrets, and the log of what was sent to them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.openapi import (
    CURSOR,
    LIMIT,
    SECURED,
    SINCE,
    WITH_BODY,
    Body,
    Reply,
    Tag,
    operation,
)
from aia_api.http.params import page_limit
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply, page_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import Services, services
from aia_api.webhooks.audit import changes, record_change, snapshot
from aia_api.webhooks.parameters import (
    ATTEMPT_OUTCOME,
    ATTEMPT_OUTCOMES,
    ENDPOINT_ID,
    EVENT_TYPE,
    MESSAGE_ID,
    MESSAGE_ID_PATH,
    MESSAGE_STATUS,
    MESSAGE_STATUSES,
)
from aia_api.webhooks.requests import EndpointPatch, EndpointRequest, RecoverRequest
from aia_api.webhooks.responses import (
    AttemptPage,
    EndpointPage,
    EndpointView,
    EventTypeList,
    MessagePage,
    MessageView,
    NewEndpoint,
    Recovered,
)
from aia_api.webhooks.views import attempt_view, endpoint_view, message_view
from aia_workers.db.webhooks import WebhookEndpoint
from aia_workers.webhooks.catalog import EVENT_TYPES, TEST_EVENT
from aia_workers.webhooks.outbox import WAKE_CHANNEL, publish
from aia_workers.webhooks.signing import new_secret
from aia_workers.webhooks.ssrf import BlockedDestination, check_literal
from aia_workers.webhooks.store import EndpointLimitError, WebhookRepository, store_secret

__all__ = ["EndpointPatch", "EndpointRequest", "RecoverRequest", "routes"]

_WEBHOOKS = Tag("webhooks", "Signed deliveries of events to your endpoints, with retries.")
_NEEDS = "Needs `webhooks:manage`."
_BLOCKED = (
    " A URL whose host is a loopback, private, link-local, metadata or other non-public "
    "address, in any spelling (`2130706433`, `[::ffff:127.0.0.1]`, ...), is a 422 "
    "`webhook-url-blocked` naming the rule, unless `AIA_WEBHOOK_ALLOWED_NETWORKS` lets it; "
    "a host name is checked when each delivery resolves it."
)


def _actor(request: Request) -> tuple[str, str]:
    principal = require(request, Permission.WEBHOOKS_MANAGE)
    return principal.tenant, f"{principal.kind}:{principal.id}"


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


async def _wake(svc: Services) -> None:
    # The relay polls anyway; the wake-up only saves it up to a second.
    with contextlib.suppress(redis.RedisError):
        await svc.redis.publish(WAKE_CHANNEL, 1)


@operation(
    id="createWebhook",
    summary="Add a webhook endpoint",
    tag=_WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={
        201: Reply("Created; the secret is shown this once.", NewEndpoint, headers=("Location",))
    },
    errors=(*SECURED, *WITH_BODY, "409"),
    description=(
        f"{_NEEDS} Deliveries are signed per the Standard Webhooks spec "
        f"(`webhook-id`, `webhook-timestamp`, `webhook-signature`).{_BLOCKED} "
        "409 `webhook-endpoint-limit` when the tenant has "
        "`AIA_WEBHOOK_TENANT_MAX_ENDPOINTS` (50) endpoints already. "
        "Audited as `endpoint.create`."
    ),
    body=Body("Where to send which events.", EndpointRequest),
)
async def create_endpoint(request: Request) -> Response:
    tenant, actor = _actor(request)
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
    tag=_WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("Newest first.", EndpointPage)},
    errors=(*SECURED, "400", "422"),
    description=_NEEDS,
    parameters=(LIMIT, CURSOR),
)
async def list_endpoints(request: Request) -> Response:
    tenant, _ = _actor(request)
    svc = services(request)
    limit = page_limit(request.query_params)
    cursor = request.query_params.get("cursor") or None

    def load() -> tuple[list[dict[str, Any]], str | None]:
        with svc.sessions() as session:
            items, after = WebhookRepository(session, tenant).endpoints(limit=limit, cursor=cursor)
            return [endpoint_view(e) for e in items], after

    items, next_cursor = await anyio.to_thread.run_sync(load)
    return page_reply(request, items, next_cursor)


@operation(
    id="getWebhook",
    summary="A webhook endpoint",
    tag=_WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("The endpoint (never its secret).", EndpointView)},
    errors=(*SECURED, "404"),
    description=_NEEDS,
    parameters=(ENDPOINT_ID,),
)
async def get_endpoint(request: Request) -> Response:
    tenant, _ = _actor(request)
    svc = services(request)
    endpoint_id = request.path_params["endpoint_id"]

    def load() -> dict[str, Any]:
        with svc.sessions() as session:
            return endpoint_view(WebhookRepository(session, tenant).endpoint(endpoint_id))

    return json_reply(await anyio.to_thread.run_sync(load))


@operation(
    id="updateWebhook",
    summary="Change an endpoint: url, events, description, enabled",
    tag=_WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("Changed.", EndpointView)},
    errors=(*SECURED, *WITH_BODY, "404"),
    description=(
        f"{_NEEDS} Enabling it again restarts the auto-disable clock.{_BLOCKED} "
        "Audited as `endpoint.update`, with each changed field."
    ),
    parameters=(ENDPOINT_ID,),
    body=Body("The fields to change.", EndpointPatch),
)
async def update_endpoint(request: Request) -> Response:
    tenant, actor = _actor(request)
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
    tag=_WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={204: Reply("Removed.")},
    errors=(*SECURED, "404"),
    description=f"{_NEEDS} Audited as `endpoint.delete`.",
    parameters=(ENDPOINT_ID,),
)
async def delete_endpoint(request: Request) -> Response:
    tenant, actor = _actor(request)
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
    tag=_WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("The new secret, shown this once.", NewEndpoint)},
    errors=(*SECURED, "404"),
    description=(
        f"{_NEEDS} The old secret keeps signing (a second signature) for "
        "`AIA_WEBHOOK_SECRET_GRACE_SECONDS`. Audited as `endpoint.rotate_secret` "
        "(never with a secret)."
    ),
    parameters=(ENDPOINT_ID,),
)
async def rotate_secret(request: Request) -> Response:
    tenant, actor = _actor(request)
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


@operation(
    id="testWebhook",
    summary="Send a webhook.test event",
    tag=_WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={202: Reply("Queued; follow its attempts.", MessageView, headers=("Location",))},
    errors=(*SECURED, "404", "409"),
    description=f"{_NEEDS} 409 when the endpoint is disabled.",
    parameters=(ENDPOINT_ID,),
)
async def send_test(request: Request) -> Response:
    tenant, actor = _actor(request)
    svc = services(request)
    endpoint_id = request.path_params["endpoint_id"]

    def record() -> dict[str, Any]:
        with svc.sessions.begin() as session:
            repository = WebhookRepository(session, tenant)
            endpoint = repository.endpoint(endpoint_id)
            if not endpoint.enabled:
                raise Problem(
                    409, "conflict", "Conflict", "the endpoint is disabled; enable it first"
                )
            [ident] = publish(
                session,
                tenant,
                TEST_EVENT,
                {"endpoint_id": endpoint_id, "message": f"a test sent by {actor}"},
                endpoint_id=endpoint_id,
            )
            return message_view(repository.message(endpoint_id, ident))

    view = await anyio.to_thread.run_sync(record)
    await _wake(svc)
    return json_reply(view, 202, {"Location": view["links"]["self"]})


def _since(request: Request) -> datetime | None:
    raw = request.query_params.get("since")
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise Problem(
            422,
            "validation-error",
            "Invalid request",
            "since must be an ISO 8601 time with a zone, e.g. 2026-11-26T00:00:00Z",
        )
    return when


@operation(
    id="listWebhookMessages",
    summary="Messages for an endpoint",
    tag=_WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("Newest first.", MessagePage)},
    errors=(*SECURED, "400", "404", "422"),
    description=f"{_NEEDS} Failed messages are the dead letters, kept with their data.",
    parameters=(ENDPOINT_ID, MESSAGE_STATUS, EVENT_TYPE, SINCE, LIMIT, CURSOR),
)
async def list_messages(request: Request) -> Response:
    tenant, _ = _actor(request)
    svc = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    params = request.query_params
    limit = page_limit(params)
    status = params.get("status") or None
    if status is not None and status not in MESSAGE_STATUSES:
        raise Problem(
            422,
            "validation-error",
            "Invalid request",
            f"status is one of {', '.join(MESSAGE_STATUSES)}",
        )
    since = _since(request)

    def load() -> tuple[list[dict[str, Any]], str | None]:
        with svc.sessions() as session:
            repository = WebhookRepository(session, tenant)
            repository.endpoint(endpoint_id)
            items, after = repository.messages(
                endpoint_id,
                status=status,
                event_type=params.get("event_type") or None,
                since=since,
                limit=limit,
                cursor=params.get("cursor") or None,
            )
            return [message_view(m) for m in items], after

    items, next_cursor = await anyio.to_thread.run_sync(load)
    return page_reply(request, items, next_cursor)


@operation(
    id="listWebhookAttempts",
    summary="Delivery attempts for an endpoint",
    tag=_WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("Newest first.", AttemptPage)},
    errors=(*SECURED, "400", "404", "422"),
    description=_NEEDS,
    parameters=(ENDPOINT_ID, MESSAGE_ID, ATTEMPT_OUTCOME, SINCE, LIMIT, CURSOR),
)
async def list_attempts(request: Request) -> Response:
    tenant, _ = _actor(request)
    svc = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    params = request.query_params
    limit = page_limit(params)
    outcome = params.get("outcome") or None
    if outcome is not None and outcome not in ATTEMPT_OUTCOMES:
        raise Problem(422, "validation-error", "Invalid request", "outcome is succeeded or failed")
    since = _since(request)

    def load() -> tuple[list[dict[str, Any]], str | None]:
        with svc.sessions() as session:
            repository = WebhookRepository(session, tenant)
            repository.endpoint(endpoint_id)
            items, after = repository.attempts(
                endpoint_id,
                message_id=params.get("message_id") or None,
                succeeded=None if outcome is None else outcome == "succeeded",
                since=since,
                limit=limit,
                cursor=params.get("cursor") or None,
            )
            return [attempt_view(a) for a in items], after

    items, next_cursor = await anyio.to_thread.run_sync(load)
    return page_reply(request, items, next_cursor)


@operation(
    id="resendWebhookMessage",
    summary="Send a message again, with the same webhook-id",
    tag=_WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={202: Reply("Queued for one more attempt.", MessageView)},
    errors=(*SECURED, "404", "409"),
    description=f"{_NEEDS} 409 while it is being sent or the endpoint is disabled.",
    parameters=(ENDPOINT_ID, MESSAGE_ID_PATH),
)
async def resend(request: Request) -> Response:
    tenant, _ = _actor(request)
    svc = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    message_id = request.path_params["message_id"]

    def again() -> dict[str, Any]:
        with svc.sessions.begin() as session:
            repository = WebhookRepository(session, tenant)
            message = repository.resend(endpoint_id, message_id, now=datetime.now(UTC))
            return message_view(message)

    view = await anyio.to_thread.run_sync(again)
    await _wake(svc)
    return json_reply(view, 202)


@operation(
    id="recoverWebhookMessages",
    summary="Resend every failed message since a time",
    tag=_WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={202: Reply("How many were queued again.", Recovered)},
    errors=(*SECURED, *WITH_BODY, "404", "409"),
    description=_NEEDS,
    parameters=(ENDPOINT_ID,),
    body=Body("Since when.", RecoverRequest),
)
async def recover(request: Request) -> Response:
    tenant, _ = _actor(request)
    svc = services(request)
    body = parse_model(RecoverRequest, await read_json(request, svc.settings.max_body_bytes))
    endpoint_id = request.path_params["endpoint_id"]

    def replay() -> int:
        with svc.sessions.begin() as session:
            return WebhookRepository(session, tenant).recover(
                endpoint_id, body.since, now=datetime.now(UTC)
            )

    count = await anyio.to_thread.run_sync(replay)
    await _wake(svc)
    return json_reply({"resent": count}, 202)


@operation(
    id="listWebhookEventTypes",
    summary="The events an endpoint can subscribe to",
    tag=_WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("Each with the JSON Schema of its data.", EventTypeList)},
    errors=SECURED,
    description=_NEEDS,
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


_ENDPOINT = "/v1/webhooks/{endpoint_id}"
routes = [
    Route("/v1/webhooks", create_endpoint, methods=["POST"]),
    Route("/v1/webhooks", list_endpoints, methods=["GET"]),
    Route("/v1/webhooks/event-types", event_types, methods=["GET"]),
    Route(_ENDPOINT, get_endpoint, methods=["GET"]),
    Route(_ENDPOINT, update_endpoint, methods=["PATCH"]),
    Route(_ENDPOINT, delete_endpoint, methods=["DELETE"]),
    Route(f"{_ENDPOINT}/rotate-secret", rotate_secret, methods=["POST"]),
    Route(f"{_ENDPOINT}/test", send_test, methods=["POST"]),
    Route(f"{_ENDPOINT}/messages", list_messages, methods=["GET"]),
    Route(f"{_ENDPOINT}/attempts", list_attempts, methods=["GET"]),
    Route(f"{_ENDPOINT}/messages/{{message_id}}/resend", resend, methods=["POST"]),
    Route(f"{_ENDPOINT}/recover", recover, methods=["POST"]),
]
