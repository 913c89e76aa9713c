"""``/v1/webhooks``: endpoints, their secrets, and the log of what was sent to them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import redis
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.params import page_limit
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply, page_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import Services, services
from aia_api.webhooks.audit import changes, record_change, snapshot
from aia_api.webhooks.views import attempt_view, endpoint_view, message_view
from aia_workers.db.webhooks import WebhookEndpoint
from aia_workers.webhooks.catalog import EVENT_TYPES, TEST_EVENT
from aia_workers.webhooks.outbox import WAKE_CHANNEL, publish
from aia_workers.webhooks.signing import new_secret
from aia_workers.webhooks.ssrf import BlockedDestination, check_literal, parse_url
from aia_workers.webhooks.store import EndpointLimitError, WebhookRepository, store_secret

__all__ = ["EndpointPatch", "EndpointRequest", "RecoverRequest", "routes"]

_MAX_PAGE = 200
_SUBSCRIBABLE = sorted(n for n in EVENT_TYPES if n != TEST_EVENT)


def _check_url(url: str) -> str:
    parse_url(url)  # its ValueError becomes the field's 422
    return url


def _check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENT_TYPES or e == TEST_EVENT]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(_SUBSCRIBABLE)}")
    return sorted(set(events))


class EndpointRequest(BaseModel):
    """Where to send which events."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="http(s) URL that receives POSTs.")
    events: list[str] = Field(min_length=1, max_length=50, description="Event types to send.")
    description: str | None = Field(default=None, max_length=500)

    _url = field_validator("url")(_check_url)
    _events = field_validator("events")(_check_events)


class EndpointPatch(BaseModel):
    """Change an endpoint; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_events(value)


class RecoverRequest(BaseModel):
    """Resend every message that failed for good since ``since``."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime


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


async def list_endpoints(request: Request) -> Response:
    tenant, _ = _actor(request)
    svc = services(request)
    limit = page_limit(request.query_params, _MAX_PAGE)
    cursor = request.query_params.get("cursor") or None

    def load() -> tuple[list[dict[str, Any]], str | None]:
        with svc.sessions() as session:
            items, after = WebhookRepository(session, tenant).endpoints(limit=limit, cursor=cursor)
            return [endpoint_view(e) for e in items], after

    items, next_cursor = await anyio.to_thread.run_sync(load)
    return page_reply(request, items, next_cursor)


async def get_endpoint(request: Request) -> Response:
    tenant, _ = _actor(request)
    svc = services(request)
    endpoint_id = request.path_params["endpoint_id"]

    def load() -> dict[str, Any]:
        with svc.sessions() as session:
            return endpoint_view(WebhookRepository(session, tenant).endpoint(endpoint_id))

    return json_reply(await anyio.to_thread.run_sync(load))


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


async def list_messages(request: Request) -> Response:
    tenant, _ = _actor(request)
    svc = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    params = request.query_params
    limit = page_limit(params, _MAX_PAGE)
    status = params.get("status") or None
    if status is not None and status not in ("pending", "sending", "delivered", "failed"):
        raise Problem(
            422,
            "validation-error",
            "Invalid request",
            "status is one of pending, sending, delivered, failed",
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


async def list_attempts(request: Request) -> Response:
    tenant, _ = _actor(request)
    svc = services(request)
    endpoint_id = request.path_params["endpoint_id"]
    params = request.query_params
    limit = page_limit(params, _MAX_PAGE)
    outcome = params.get("outcome") or None
    if outcome is not None and outcome not in ("succeeded", "failed"):
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
