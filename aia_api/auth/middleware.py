"""The ASGI middleware that puts a Principal on every request but the public ones."""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy.exc
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from aia_api.auth.principal import Unauthenticated
from aia_api.problems import Problem, problem_response, unavailable

__all__ = ["AuthMiddleware"]

_DATABASE_DOWN = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)


class AuthMiddleware:
    """Authenticates HTTP and WebSocket requests; sets ``state.principal`` and ``state.tenant``."""

    def __init__(self, app: ASGIApp, public_paths: Collection[str]) -> None:
        self.app = app
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorization = headers.get("authorization")
        api_key = headers.get("x-api-key")
        if scope["type"] == "websocket" and not (authorization or api_key):
            # Browsers cannot set headers on a WebSocket handshake.
            token = QueryParams(scope.get("query_string", b"")).get("access_token")
            authorization = f"Bearer {token}" if token else None
        services = scope["app"].state.services
        try:
            # The app's authenticator is made in its lifespan, after this middleware.
            principal = await services.auth.authenticate(authorization, api_key)
        except _DATABASE_DOWN:
            # Outside the app's exception handlers, so answered here.
            problem = unavailable("The database", services.settings.retry_after_seconds)
            await self._refuse(scope, receive, send, problem)
            return
        except Unauthenticated as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": str(exc)[:120]})
                return
            problem = Problem(
                401,
                "unauthenticated",
                "Unauthenticated",
                str(exc),
                headers={"WWW-Authenticate": 'Bearer realm="aia"'},
            )
            await self._refuse(scope, receive, send, problem)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["tenant"] = principal.tenant
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011, "reason": problem.detail[:120]})
            return
        await problem_response(problem, scope["path"])(scope, receive, send)
