"""Task event streams: Server-Sent Events per task, and one WebSocket for many tasks.

Both subscribe first, then replay what the client missed from the task's
replay stream, then follow live, dropping anything already sent by its
sequence number; so no event is lost between submit and subscribe.

Each stream holds one of its principal's slots (``AIA_STREAM_MAX_CONNECTIONS``
across every API process) and is ended when its credential stops being good
(see aia_api/tasks/streaming/guard.py). Browsers, which cannot set headers on
either, open them with a ticket from ``POST /v1/streams/tickets``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis.exceptions
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from aia_api.http.openapi import (
    SECURED,
    Reply,
    Tag,
    WebSocketDoc,
    documented_websocket,
    operation,
)
from aia_api.http.problems import Problem
from aia_api.http.tenancy import principal_of, require
from aia_api.identity.roles import Permission
from aia_api.services import Services, services
from aia_api.tasks.hub import Subscription, SubscriptionLost
from aia_api.tasks.openapi import AFTER, LAST_EVENT_ID, TASK_ID, TICKET
from aia_api.tasks.responses import TaskEvent as TaskEventModel
from aia_api.tasks.responses import WsCommand, WsMessage
from aia_api.tasks.streaming.credential import credential_of
from aia_api.tasks.streaming.guard import OpenStream
from aia_api.tasks.streaming.slots import StreamLimitReached
from aia_api.tasks.streaming.sse import (
    EventStream,
    close_stream,
    last_event_id,
    open_stream,
    sse_error,
    sse_problem,
    too_many_streams,
)
from aia_api.tasks.streaming.tickets import StreamTicket, issue_ticket
from aia_workers.backbone.event import TaskEvent
from aia_workers.backbone.keys import channel, events_key
from aia_workers.backbone.states import TERMINAL

__all__ = ["routes"]

log = logging.getLogger(__name__)

_STREAMS = Tag("streams", "Task events, as SSE or over a WebSocket.")


async def _replay(svc: Services, task_id: str, after: int) -> list[TaskEvent]:
    """Events of ``task_id`` with a sequence number above ``after``, oldest first."""
    entries: list[tuple[str, dict[str, str]]] = await svc.redis.xrange(  # type: ignore[assignment]
        events_key(task_id), min=f"0-{after + 1}"
    )
    return [TaskEvent.from_json(fields["e"]) for _, fields in entries]


def _synthetic_terminal(view: dict[str, Any]) -> TaskEvent:
    # The replay stream expired but the record is final: say how it ended.
    data: dict[str, Any] = {}
    if view.get("result") is not None:
        data["result"] = view["result"]
    if view.get("error") is not None:
        data["error"] = view["error"]
    return TaskEvent(view["id"], view["seq"], view["status"], view["status"], None, data)


def _sse(event: TaskEvent) -> bytes:
    return f"id: {event.seq}\nevent: {event.event}\ndata: {event.to_json()}\n\n".encode()


@operation(
    id="createStreamTicket",
    summary="Get a stream ticket",
    tag=_STREAMS,
    permission=Permission.TASKS_READ,
    responses={201: Reply("A single-use ticket for one stream.", StreamTicket)},
    errors=SECURED,
    description=(
        "A ticket for browsers, which cannot set headers on an EventSource or a WebSocket: "
        "open one stream with `?ticket=<ticket>` on `/v1/tasks/{task_id}/events`, `/v1/ws` or "
        "`/v1/agents/{agent_id}/messages/events` within `expires_in` seconds "
        "(`AIA_STREAM_TICKET_TTL_SECONDS`). It works once, for the principal that asked for "
        "it, and the stream then lives as long as these credentials do. Credentials in a query "
        "string (`?access_token=`) are not accepted. Needs `tasks:read`."
    ),
)
async def create_ticket(request: Request) -> Response:
    """A single-use ticket that opens one stream in place of this request's credentials."""
    principal = require(request, Permission.TASKS_READ)
    svc = services(request)
    ttl = svc.settings.stream_ticket_ttl_seconds
    ticket = await issue_ticket(svc.redis, credential_of(request), principal, ttl)
    return JSONResponse(
        {"ticket": ticket, "expires_in": ttl},
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


# -- Server-Sent Events -------------------------------------------------------------


@operation(
    id="taskEvents",
    summary="Follow a task's events (SSE)",
    tag=_STREAMS,
    permission=Permission.TASKS_READ,
    responses={
        200: Reply(
            "An event stream; each `data:` is a TaskEvent.",
            content={
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "x-event-schema": TaskEventModel,
                }
            },
        )
    },
    errors=(*SECURED, "400", "404"),
    description=(
        "Server-Sent Events of one task: first what happened after Last-Event-ID (or `?after=`), "
        "then live events, until the task ends. Each event is `id: <seq>`, `event: <name>` "
        "(queued, started, progress, retrying, succeeded, failed, cancelled) and "
        "`data: <TaskEvent JSON>`; comments (`: keep-alive`) keep the connection open. An "
        "`event: error` with a problem in `data` says the stream was dropped: reconnect with "
        "Last-Event-ID; its `status` is 401 or 403 when the credentials were revoked, expired "
        "or lost `tasks:read`, and the stream ends there. Browsers, which cannot set headers "
        "on an EventSource, send `?ticket=` from `POST /v1/streams/tickets` instead. 429 when "
        "the principal already holds `AIA_STREAM_MAX_CONNECTIONS` streams (SSE and WebSocket, "
        "every API process). Needs `tasks:read`."
    ),
    parameters=(TASK_ID, LAST_EVENT_ID, AFTER, TICKET),
)
async def task_events(request: Request) -> StreamingResponse:
    svc = services(request)
    task_id = request.path_params["task_id"]
    after = last_event_id(request)
    principal = require(request, Permission.TASKS_READ)
    view = await svc.tasks.get(principal.tenant, task_id)
    if view is None:
        raise Problem(404, "task-not-found", "Task not found", f"there is no task {task_id}")
    sub = Subscription(svc.settings.subscriber_buffer)
    try:
        stream = await open_stream(svc, request, principal, sub)
    except StreamLimitReached as exc:
        raise too_many_streams(svc, exc) from None
    try:
        await svc.hub.attach(sub, channel(task_id), TaskEvent.from_json)
        backlog = await _replay(svc, task_id, after)
    except BaseException:
        await close_stream(svc, stream)
        raise
    heartbeat = svc.settings.sse_heartbeat_seconds

    async def events() -> AsyncIterator[bytes]:
        last = after
        try:
            yield b"retry: 2000\n\n"
            for event in backlog:
                if event.seq > last:
                    last = event.seq
                    yield _sse(event)
                    if event.ends and event.event != "progress":
                        return
            if view["status"] in TERMINAL and view["seq"] > last:
                yield _sse(_synthetic_terminal(view))
                return
            while True:
                batch = await sub.get(wait_seconds=heartbeat)
                if not batch:
                    yield b": keep-alive\n\n"
                for event in batch:
                    if event.seq <= last:
                        continue
                    last = event.seq
                    yield _sse(event)
                    if event.ends:
                        return
        except SubscriptionLost as exc:
            if stream.ended is not None:
                yield sse_problem(stream.ended)
            elif sub.lost != "client disconnected":
                yield sse_error(str(exc))

    return EventStream(events(), svc, stream)


# -- WebSocket ----------------------------------------------------------------------


def _close_reason(text: str) -> str:
    # A close frame's reason is at most 123 bytes of UTF-8.
    return text.encode()[:123].decode(errors="ignore")


async def _refuse(ws: WebSocket, status: int, detail: str, code: int) -> None:
    """Accept, say why in an error message and the close reason, and close."""
    await ws.accept()
    with contextlib.suppress(Exception):
        await ws.send_json({"type": "error", "status": status, "detail": detail})
        await ws.close(code=code, reason=_close_reason(detail))


@documented_websocket(
    WebSocketDoc(
        summary="Follow many tasks (WebSocket)",
        description=(
            "A WebSocket (OpenAPI has no operation for one, so it is described here and in "
            "`x-websocket`): one connection follows many tasks. Authenticate with the "
            "Authorization or X-API-Key header, or where headers cannot be set (browsers) with "
            "`?ticket=` from `POST /v1/streams/tickets`. Send `WsCommand` messages "
            "(`subscribe` with an optional `after`, `unsubscribe`); receive `WsMessage`s: "
            "`subscribed`, `unsubscribed`, `event` (a TaskEvent's fields), `error` (status 429 "
            "past `AIA_WS_MAX_SUBSCRIPTIONS` tasks followed at once). Close codes: 1008 "
            "unauthenticated or forbidden, also when the credentials are revoked or expire "
            "while open; 1011 server error or lost stream; 1013 rate limited, or the principal "
            "already holds `AIA_STREAM_MAX_CONNECTIONS` streams. Needs `tasks:read`."
        ),
        client_messages=WsCommand,
        server_messages=WsMessage,
        query={"ticket": "a stream ticket, when headers cannot be set"},
    )
)
async def websocket(ws: WebSocket) -> None:
    """One connection, many tasks: ``{"action": "subscribe"|"unsubscribe", "task_id": ...}``."""
    svc = services(ws)
    principal = principal_of(ws)
    if not principal.can(Permission.TASKS_READ):
        await ws.close(code=1008, reason="this needs the tasks:read permission")
        return
    sub = Subscription(svc.settings.subscriber_buffer)
    try:
        stream = await open_stream(svc, ws, principal, sub)
    except StreamLimitReached as exc:
        await _refuse(ws, 429, str(exc), 1013)
        return
    except redis.exceptions.RedisError:
        await _refuse(ws, 503, "Redis is not reachable right now; try again shortly", 1013)
        return
    reader: asyncio.Task[None] | None = None
    try:
        await ws.accept()
        reader = asyncio.create_task(_read_commands(ws, sub))
        await _serve(ws, svc, stream)
    except SubscriptionLost as exc:
        ended = stream.ended
        if ended is not None:
            code = 1013 if ended.status == 503 else 1008
            with contextlib.suppress(Exception):
                await ws.send_json(
                    {"type": "error", "status": ended.status, "detail": ended.detail}
                )
                await ws.close(code=code, reason=_close_reason(ended.detail))
        elif sub.lost != "client disconnected":
            with contextlib.suppress(Exception):
                await ws.send_json({"type": "error", "detail": str(exc)})
                await ws.close(code=1011)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        if reader is not None:
            reader.cancel()
        await close_stream(svc, stream)


async def _serve(ws: WebSocket, svc: Services, stream: OpenStream) -> None:
    """Run commands and forward events, in order, until the subscription is lost."""
    sub = stream.sub
    watched: dict[str, int] = {}
    while True:
        for item in await sub.get():
            if not isinstance(item, TaskEvent):
                # The principal of now: a demotion may have changed it.
                await _command(ws, svc, sub, stream.principal.tenant, item, watched)
                continue
            if item.seq <= watched.get(item.task_id, item.seq):
                continue
            await _forward(ws, svc, sub, item, watched)


async def _read_commands(ws: WebSocket, sub: Subscription) -> None:
    # Commands go through the subscription so that the single writer handles
    # them in order with the live events (replay, then live, never interleaved).
    try:
        while True:
            text = await ws.receive_text()
            try:
                command = json.loads(text)
            except json.JSONDecodeError:
                command = {"action": "invalid", "detail": "messages must be JSON objects"}
            if not isinstance(command, dict) or "action" not in command:
                command = {"action": "invalid", "detail": 'a message needs an "action"'}
            sub.put(command)
    except (WebSocketDisconnect, RuntimeError):
        sub.drop("client disconnected")


async def _command(
    ws: WebSocket,
    svc: Services,
    sub: Subscription,
    tenant: str,
    command: dict[str, Any],
    watched: dict[str, int],
) -> None:
    action = command.get("action")
    task_id = command.get("task_id")
    if action not in ("subscribe", "unsubscribe") or not isinstance(task_id, str):
        detail = command.get("detail") or (
            'use {"action": "subscribe" | "unsubscribe", "task_id": "...", "after": 0}'
        )
        await ws.send_json({"type": "error", "status": 400, "detail": detail})
        return
    if action == "unsubscribe":
        watched.pop(task_id, None)
        await svc.hub.detach(sub, channel(task_id))
        await ws.send_json({"type": "unsubscribed", "task_id": task_id})
        return
    limit = svc.settings.ws_max_subscriptions
    if task_id not in watched and len(watched) >= limit:
        await ws.send_json(
            {
                "type": "error",
                "status": 429,
                "task_id": task_id,
                "detail": f"this connection already follows {limit} tasks, as many as it may; "
                "unsubscribe from one, or wait for one to finish",
            }
        )
        return
    after = command.get("after", 0)
    if not isinstance(after, int) or after < 0:
        await ws.send_json(
            {
                "type": "error",
                "status": 400,
                "task_id": task_id,
                "detail": "after must be a non-negative event id",
            }
        )
        return
    view = await svc.tasks.get(tenant, task_id)
    if view is None:
        await ws.send_json(
            {
                "type": "error",
                "status": 404,
                "task_id": task_id,
                "detail": f"there is no task {task_id}",
            }
        )
        return
    await svc.hub.attach(sub, channel(task_id), TaskEvent.from_json)
    watched[task_id] = after
    await ws.send_json({"type": "subscribed", "task_id": task_id})
    for event in await _replay(svc, task_id, after):
        if task_id not in watched or event.seq <= watched[task_id]:
            continue
        await _forward(ws, svc, sub, event, watched)
    if task_id in watched and view["status"] in TERMINAL and view["seq"] > watched[task_id]:
        await _forward(ws, svc, sub, _synthetic_terminal(view), watched)


async def _forward(
    ws: WebSocket,
    svc: Services,
    sub: Subscription,
    event: TaskEvent,
    watched: dict[str, int],
) -> None:
    task_id = event.task_id
    watched[task_id] = event.seq
    await ws.send_json({"type": "event", **event.as_dict()})
    if event.ends:
        # A finished task sends nothing more; stop listening for it.
        watched.pop(task_id, None)
        await svc.hub.detach(sub, channel(task_id))


routes = [
    Route("/v1/streams/tickets", create_ticket, methods=["POST"]),
    Route("/v1/tasks/{task_id}/events", task_events, methods=["GET"]),
    WebSocketRoute("/v1/ws", websocket),
]
