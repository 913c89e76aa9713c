"""What every event stream of the API shares: its slot, its response, its errors, its resume point.

The task streams (``aia_api/tasks/streams.py``) and an agent's mailbox stream
(``aia_api/agents/mailbox_stream.py``) open, close and end their streams alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from aia_api.http.params import parse_count
from aia_api.http.problems import Problem
from aia_api.identity.principal import Principal
from aia_api.identity.roles import Permission
from aia_api.services import Services
from aia_api.tasks.hub import Subscription
from aia_api.tasks.streaming.credential import credential_of
from aia_api.tasks.streaming.guard import OpenStream
from aia_api.tasks.streaming.slots import StreamLimitReached

__all__ = [
    "EventStream",
    "close_stream",
    "last_event_id",
    "open_stream",
    "sse_error",
    "sse_problem",
    "too_many_streams",
]


async def open_stream(
    svc: Services,
    conn: HTTPConnection,
    principal: Principal,
    sub: Subscription,
    permission: Permission = Permission.TASKS_READ,
) -> OpenStream:
    """Take one of the principal's stream slots; StreamLimitReached when none is left.

    ``permission`` is what the stream needs: it ends when its credential loses it.
    """
    stream = await svc.streams.open(principal, credential_of(conn), sub, permission)
    svc.metrics.streams.inc()
    return stream


async def close_stream(svc: Services, stream: OpenStream) -> None:
    svc.metrics.streams.dec()
    await svc.hub.detach(stream.sub)
    await svc.streams.close(stream)


def too_many_streams(svc: Services, exc: StreamLimitReached) -> Problem:
    return Problem(
        429,
        "too-many-streams",
        "Too many open streams",
        str(exc),
        headers={"Retry-After": str(svc.settings.retry_after_seconds)},
        limit=exc.limit,
    )


def sse_error(reason: str) -> bytes:
    """An ``error`` event saying the stream was dropped (reconnect with Last-Event-ID)."""
    body = {"type": "urn:aia:problem:stream-dropped", "title": "Stream dropped", "detail": reason}
    return f"event: error\ndata: {orjson.dumps(body).decode()}\n\n".encode()


def sse_problem(problem: Problem) -> bytes:
    """An ``error`` event carrying ``problem``."""
    return f"event: error\ndata: {orjson.dumps(problem.body()).decode()}\n\n".encode()


def last_event_id(request: Request) -> int:
    """Last-Event-ID (or ``?after=``), 0 when absent; a 400 Problem when it is not a count."""
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    after = parse_count(raw)
    if after is None:
        raise Problem(
            400,
            "invalid-last-event-id",
            "Invalid Last-Event-ID",
            "Last-Event-ID (or ?after=) must be the id of an event this stream sent",
        )
    return after


class EventStream(StreamingResponse):
    """An SSE response that watches for the client going away, and closes its stream."""

    def __init__(self, events: AsyncIterator[bytes], svc: Services, stream: OpenStream) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._svc = svc
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub = self._stream.sub

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    sub.drop("client disconnected")
                    return

        watcher = asyncio.create_task(watch())
        try:
            await self.stream_response(send)
        except OSError:
            pass
        finally:
            watcher.cancel()
            # Here rather than in the generator, which never runs (nor its
            # finally) when the client is gone before the first byte.
            await close_stream(self._svc, self._stream)
