"""The ASGI middleware that puts a Principal on every request but the public ones.

A public path is named exactly (``/health``), with its method (``POST
/v1/auth/session``: signing in is public, reading the session is not), or by
a prefix (``/ui/static/``).
"""

from __future__ import annotations

from collections.abc import Collection

from redis.exceptions import RedisError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from aia_api.http.problems import Problem, problem_response, unavailable
from aia_api.http.security_headers import RESPONSE_HEADERS
from aia_api.identity.authenticator import Principal, TooManyFailures, Unauthenticated
from aia_api.identity.browser import CrossSiteRefused, session_cookie
from aia_api.identity.refusals import too_many_failures, unauthenticated
from aia_api.services import Services
from aia_api.tasks.streaming.credential import STANDIN_CREDENTIAL
from aia_api.tasks.streaming.tickets import accepts_ticket, redeem_ticket
from aia_workers.db.session import DATABASE_DOWN

__all__ = ["AuthMiddleware"]


class AuthMiddleware:
    """Authenticates HTTP and WebSocket requests; sets ``state.principal`` and ``state.tenant``."""

    def __init__(
        self, app: ASGIApp, public_paths: Collection[str], public_prefixes: Collection[str] = ()
    ) -> None:
        self.app = app
        self.public_paths = frozenset(public_paths)
        self.public_prefixes = tuple(public_prefixes)
        # "METHOD /path" entries by path, so a request's check builds no string.
        self._public_methods: dict[str, set[str]] = {}
        for entry in self.public_paths:
            method, _, path = entry.partition(" ")
            if path:
                self._public_methods.setdefault(path, set()).add(method)

    def _public(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if path in self.public_paths or path.startswith(self.public_prefixes):
            return True
        methods = self._public_methods.get(path)
        return methods is not None and scope.get("method", "") in methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        settings = services.settings
        path = scope["path"]
        try:
            if self._public(scope):
                if not path.startswith("/v1/auth/"):
                    await self.app(scope, receive, send)
                    return
                # Logins are rate limited per client address, and tightly.
                quota = services.limiter.hit(
                    f"addr:{_address(scope)}", settings.auth_rate_limit_per_minute
                )
            else:
                authorization, api_key = _credentials(scope)
                principal = services.auth.resolved(authorization, api_key) or (
                    await self._authenticate(
                        scope, services, _address(scope), authorization, api_key
                    )
                )
                state = scope.setdefault("state", {})
                state["principal"] = principal
                state["tenant"] = principal.tenant
                quota = services.limiter.hit(principal.actor, settings.rate_limit_per_minute)
        except DATABASE_DOWN:
            # Only a caller not verified recently gets here (see Authenticator).
            # Outside the app's exception handlers, so answered here.
            problem = unavailable("The database", settings.retry_after_seconds)
            await self._refuse(scope, receive, send, problem, ws_code=1013)
            return
        except RedisError:
            # The failure budget of a credential not known here could not be
            # charged; looking it up regardless would let guessing run free.
            problem = unavailable("Redis", settings.retry_after_seconds)
            await self._refuse(scope, receive, send, problem, ws_code=1013)
            return
        except TooManyFailures as exc:
            problem = too_many_failures(exc)
            await self._refuse(scope, receive, send, problem, ws_code=1013)
            return
        except CrossSiteRefused as exc:
            problem = Problem(403, "cross-site-refused", "Cross-site request refused", str(exc))
            await self._refuse(scope, receive, send, problem, ws_code=1008)
            return
        except Unauthenticated as exc:
            problem = unauthenticated(str(exc))
            await self._refuse(scope, receive, send, problem, ws_code=1008)
            return
        if quota.exceeded:
            problem = Problem(
                429,
                "rate-limited",
                "Too many requests",
                f"more than {quota.limit} requests a minute; try again in {quota.reset_seconds} s",
                headers={**quota.headers(), "Retry-After": str(quota.reset_seconds)},
            )
            await self._refuse(scope, receive, send, problem, ws_code=1013)
            return
        if scope["type"] == "http":
            # Added by SecurityHeaders, outermost, to the copy of the response's
            # headers it makes anyway: no wrapper around send of our own.
            scope[RESPONSE_HEADERS] = quota.raw_headers()
        await self.app(scope, receive, send)

    @staticmethod
    async def _authenticate(
        scope: Scope,
        services: Services,
        address: str,
        authorization: str | None,
        api_key: str | None,
    ) -> Principal:
        if authorization or api_key:
            return await services.auth.authenticate(authorization, api_key, address=address)
        cookie = session_cookie(Headers(scope=scope))
        if cookie is not None:
            # The dashboard's session; credentials in headers, when sent, win.
            credential = services.browser.credential(scope, cookie)
            scope.setdefault("state", {})[STANDIN_CREDENTIAL] = credential
            return await services.auth.authenticate(
                credential.authorization, credential.api_key, address=address
            )
        if accepts_ticket(scope):
            # Browsers cannot set headers on an EventSource or a WebSocket
            # handshake: a stream takes a single-use ticket instead, never a
            # credential that access logs would keep.
            return await redeem_ticket(scope, services.redis, services.auth)
        return await services.auth.authenticate(authorization, api_key, address=address)

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, problem: Problem, *, ws_code: int = 1011
    ) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": ws_code, "reason": problem.detail[:120]})
            return
        await problem_response(problem, scope["path"])(scope, receive, send)


def _address(scope: Scope) -> str:
    """The TCP peer, or the client a trusted proxy names (ProxyHeadersMiddleware)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


def _credentials(scope: Scope) -> tuple[str | None, str | None]:
    """The Authorization and X-API-Key header values, the first of each, as Headers.get finds them.

    One pass over the raw headers, whose names the server gives lower-cased.
    """
    authorization = api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1")
    return authorization, api_key
