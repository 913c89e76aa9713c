"""Security headers on every response of the API, errors and event streams included.

The API answers JSON, problem+json and event streams, none of which a browser
should sniff into something else, run scripts from, frame or send on as a
Referer (a stream's URL may hold a ticket). HSTS is sent only on a response
that went out over TLS: the request's scheme, which uvicorn takes from
X-Forwarded-Proto when the proxy in front of it is trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_POLICY", "RESPONSE_HEADERS", "SecureStarlette", "SecurityHeaders"]

# Nothing an API response holds may load or run anything. A response that
# needs more (the docs page) sets its own Content-Security-Policy.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_STARTS = ("http.response.start", "websocket.http.response.start")
# Each added unless the route set it; HSTS only over TLS.
_DEFAULTS = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", API_POLICY.encode("latin-1")),
    (b"referrer-policy", b"no-referrer"),
)
_HSTS = (b"strict-transport-security", b"max-age=31536000")
_NAMES = frozenset(name for name, _ in (*_DEFAULTS, _HSTS))

# A scope key under which a layer further in leaves raw headers for the
# response, when it starts: added in the one copy of the headers made here,
# rather than by another wrapper around ``send`` (a coroutine more for every
# message of every response).
RESPONSE_HEADERS = "aia.response_headers"


class SecurityHeaders:
    """Adds the headers to every response, keeping any a route set itself.

    Also adds those a layer further in left under ``RESPONSE_HEADERS`` in the
    scope (the rate limit's), as they are.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] in _STARTS:
                message = {**message, "headers": _secured(scope, message.get("headers", ()))}
            await send(message)

        await self.app(scope, receive, send_secured)


def _secured(scope: Scope, raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    headers = list(raw)
    # One pass over the names (lower-cased, as ASGI has them) finds which a
    # route set; an ordinary response sets none of them.
    present = {name for name, _ in headers if name in _NAMES} if headers else ()
    headers += [pair for pair in _DEFAULTS if pair[0] not in present]
    # Read now, not on the way in: a proxy-headers middleware further in sets
    # the scheme a trusted proxy forwarded.
    if scope.get("scheme") in ("https", "wss") and _HSTS[0] not in present:
        headers.append(_HSTS)
    extra = scope.get(RESPONSE_HEADERS)
    if extra:
        headers += extra
    return headers


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
