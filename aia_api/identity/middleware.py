"""The ASGI middleware that puts a Principal on every request but the public ones.

A public path is named exactly (``/health``), with its method (``POST
/v1/auth/session``: signing in is public, reading the session is not), or by
a prefix (``/ui/static/``).
"""

from __future__ import annotations

from collections.abc import Collection

from redis.exceptions import RedisError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aia_api.http.problems import Problem, problem_response, unavailable
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

    def _public(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return (
            path in self.public_paths
            or f"{scope.get('method', '')} {path}" in self.public_paths
            or path.startswith(self.public_prefixes)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        settings = services.settings
        path = scope["path"]
        # The TCP peer, or the client a trusted proxy names (ProxyHeadersMiddleware).
        client = scope.get("client")
        address = client[0] if client else "unknown"
        try:
            if self._public(scope):
                if not path.startswith("/v1/auth/"):
                    await self.app(scope, receive, send)
                    return
                # Logins are rate limited per client address, and tightly.
                quota = services.limiter.hit(f"addr:{address}", settings.auth_rate_limit_per_minute)
            else:
                principal = await self._authenticate(scope, services, address)
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
        extra = quota.raw_headers()

        async def with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_quota)

    @staticmethod
    async def _authenticate(scope: Scope, services: Services, address: str) -> Principal:
        headers = Headers(scope=scope)
        authorization = headers.get("authorization")
        api_key = headers.get("x-api-key")
        cookie = None if authorization or api_key else session_cookie(headers)
        if cookie is not None:
            # The dashboard's session; credentials in headers, when sent, win.
            credential = services.browser.credential(scope, cookie)
            scope.setdefault("state", {})[STANDIN_CREDENTIAL] = credential
            return await services.auth.authenticate(
                credential.authorization, credential.api_key, address=address
            )
        if not (authorization or api_key) and accepts_ticket(scope):
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
