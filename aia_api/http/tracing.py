"""A server span per HTTP request, and its ``traceparent`` on every response.

Installed only while tracing is on (``aia_workers.tracing.runtime``), outside
every other middleware, so a 500 or a refusal by authentication is a span
too and carries the header. A caller's own ``traceparent`` makes the request
a child of its span; the enqueue (``aia_api.tasks.service``) and through it
the task's run are children of the request's.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aia_workers.tracing.context import TRACEPARENT, context_of, traceparent

__all__ = ["TracingMiddleware"]

_HEADER = TRACEPARENT.encode()


class TracingMiddleware:
    """Wraps each HTTP request in a server span."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A WebSocket lives as long as its client stays: not a request's span.
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        parent = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                parent = context_of(value)
                break
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        with self.tracer.start_as_current_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            # Recorded below, with the status the client was sent.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            header = (traceparent(span) or "").encode()
            status = 0

            async def send_traced(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message = {
                        **message,
                        "headers": [*message.get("headers", ()), (_HEADER, header)],
                    }
                await send(message)

            try:
                await self.app(scope, receive, send_traced)
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, type(exc).__name__)
                status = status or 500
                raise
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None)
                if template:
                    span.set_attribute("http.route", template)
                    span.update_name(f"{method} {template}")
                if status:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(StatusCode.ERROR)
