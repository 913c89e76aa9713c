"""``/v1/webhooks/{endpoint_id}/...``: test deliveries, the log of what was sent, resends."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
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
    operation,
)
from aia_api.http.params import page_limit
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply, page_reply
from aia_api.identity.roles import Permission
from aia_api.services import Services, services
from aia_api.webhooks.audit import tenant_and_actor
from aia_api.webhooks.openapi import (
    ATTEMPT_OUTCOME,
    ATTEMPT_OUTCOMES,
    ENDPOINT_ID,
    EVENT_TYPE,
    MESSAGE_ID,
    MESSAGE_ID_PATH,
    MESSAGE_STATUS,
    MESSAGE_STATUSES,
    NEEDS,
    WEBHOOKS,
)
from aia_api.webhooks.requests import RecoverRequest
from aia_api.webhooks.responses import (
    AttemptPage,
    MessagePage,
    MessageView,
    Recovered,
)
from aia_api.webhooks.views import attempt_view, message_view
from aia_workers.webhooks.catalog import TEST_EVENT
from aia_workers.webhooks.outbox import WAKE_CHANNEL, publish
from aia_workers.webhooks.store import WebhookRepository

__all__ = ["routes"]


async def _wake(svc: Services) -> None:
    # The relay polls anyway; the wake-up only saves it up to a second.
    with contextlib.suppress(redis.RedisError):
        await svc.redis.publish(WAKE_CHANNEL, 1)


@operation(
    id="testWebhook",
    summary="Send a webhook.test event",
    tag=WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={202: Reply("Queued; follow its attempts.", MessageView, headers=("Location",))},
    errors=(*SECURED, "404", "409"),
    description=f"{NEEDS} 409 when the endpoint is disabled.",
    parameters=(ENDPOINT_ID,),
)
async def send_test(request: Request) -> Response:
    tenant, actor = tenant_and_actor(request)
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
    tag=WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("Newest first.", MessagePage)},
    errors=(*SECURED, "400", "404", "422"),
    description=f"{NEEDS} Failed messages are the dead letters, kept with their data.",
    parameters=(ENDPOINT_ID, MESSAGE_STATUS, EVENT_TYPE, SINCE, LIMIT, CURSOR),
)
async def list_messages(request: Request) -> Response:
    tenant, _ = tenant_and_actor(request)
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
    tag=WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={200: Reply("Newest first.", AttemptPage)},
    errors=(*SECURED, "400", "404", "422"),
    description=NEEDS,
    parameters=(ENDPOINT_ID, MESSAGE_ID, ATTEMPT_OUTCOME, SINCE, LIMIT, CURSOR),
)
async def list_attempts(request: Request) -> Response:
    tenant, _ = tenant_and_actor(request)
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
    tag=WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={202: Reply("Queued for one more attempt.", MessageView)},
    errors=(*SECURED, "404", "409"),
    description=f"{NEEDS} 409 while it is being sent or the endpoint is disabled.",
    parameters=(ENDPOINT_ID, MESSAGE_ID_PATH),
)
async def resend(request: Request) -> Response:
    tenant, _ = tenant_and_actor(request)
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
    tag=WEBHOOKS,
    permission=Permission.WEBHOOKS_MANAGE,
    responses={202: Reply("How many were queued again.", Recovered)},
    errors=(*SECURED, *WITH_BODY, "404", "409"),
    description=NEEDS,
    parameters=(ENDPOINT_ID,),
    body=Body("Since when.", RecoverRequest),
)
async def recover(request: Request) -> Response:
    tenant, _ = tenant_and_actor(request)
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


_ENDPOINT = "/v1/webhooks/{endpoint_id}"
routes = [
    Route(f"{_ENDPOINT}/test", send_test, methods=["POST"]),
    Route(f"{_ENDPOINT}/messages", list_messages, methods=["GET"]),
    Route(f"{_ENDPOINT}/attempts", list_attempts, methods=["GET"]),
    Route(f"{_ENDPOINT}/messages/{{message_id}}/resend", resend, methods=["POST"]),
    Route(f"{_ENDPOINT}/recover", recover, methods=["POST"]),
]
