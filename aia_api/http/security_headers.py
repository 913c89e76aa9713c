"""Security headers on every response of the API, errors and event streams included.

The API answers JSON, problem+json and event streams, none of which a browser
should sniff into something else, run scripts from, frame or send on as a
Referer (a stream's URL may hold a ticket). HSTS is sent only on a response
that went out over TLS: the request's scheme, which uvicorn takes from
X-Forwarded-Proto when the proxy in front of it is trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_POLICY", "SecureStarlette", "SecurityHeaders"]

# Nothing an API response holds may load or run anything. A response that
# needs more (the docs page) sets its own Content-Security-Policy.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_HSTS = "max-age=31536000"
_STARTS = ("http.response.start", "websocket.http.response.start")


class SecurityHeaders:
    """Adds the headers to every response, keeping any a route set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] in _STARTS:
                # Read now, not on the way in: a proxy-headers middleware further
                # in sets the scheme a trusted proxy forwarded.
                tls = scope.get("scheme") in ("https", "wss")
                message = {**message, "headers": list(message.get("headers", []))}
                headers = MutableHeaders(raw=message["headers"])
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Content-Security-Policy", API_POLICY)
                headers.setdefault("Referrer-Policy", "no-referrer")
                if tls:
                    headers.setdefault("Strict-Transport-Security", _HSTS)
            await send(message)

        await self.app(scope, receive, send_secured)


class SecureStarlette(Starlette):
    """Starlette with SecurityHeaders outside even its ServerErrorMiddleware, so a 500 has them.

    ``outermost`` wrap the whole, SecurityHeaders included, the last given
    outside the others (tracing, which must see every response as it left).
    """

    def __init__(
        self, *args: Any, outermost: Sequence[Callable[[ASGIApp], ASGIApp]] = (), **kwargs: Any
    ) -> None:
        self._outermost = tuple(outermost)
        super().__init__(*args, **kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = SecurityHeaders(super().build_middleware_stack())
        for wrap in self._outermost:
            app = wrap(app)
        return app
