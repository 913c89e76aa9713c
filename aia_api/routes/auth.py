"""``/v1/auth``: log in for tokens, rotate the refresh token, log out."""

from __future__ import annotations

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aia_api.auth.store import ActiveUser, RefreshError, RefreshReuseError
from aia_api.body import parse_model, read_json
from aia_api.problems import Problem
from aia_api.services import Services, services

__all__ = ["PUBLIC_PATHS", "routes"]

PUBLIC_PATHS = ("/v1/auth/token", "/v1/auth/refresh", "/v1/auth/logout")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=200)


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "unauthenticated",
        "Unauthenticated",
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="aia"'},
    )


def _tokens(svc: Services, user: ActiveUser, refresh: str) -> Response:
    access = svc.auth.codec.issue(subject=user.id, tenant=user.tenant, roles=[user.role.value])
    return JSONResponse(
        {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": svc.auth.codec.ttl_seconds,
            "refresh_token": refresh,
            "refresh_expires_in": svc.settings.refresh_token_ttl_seconds,
        },
        headers={"Cache-Control": "no-store"},
    )


async def token(request: Request) -> Response:
    svc = services(request)
    body = parse_model(TokenRequest, await read_json(request, svc.settings.max_body_bytes))
    user = await anyio.to_thread.run_sync(svc.identity.authenticate, body.username, body.password)
    if user is None:
        raise _unauthorized("the username or password is wrong")
    refresh = await anyio.to_thread.run_sync(svc.identity.issue_refresh, user.id)
    return _tokens(svc, user, refresh)


async def refresh(request: Request) -> Response:
    svc = services(request)
    body = parse_model(RefreshRequest, await read_json(request, svc.settings.max_body_bytes))
    try:
        user, rotated = await anyio.to_thread.run_sync(
            svc.identity.rotate_refresh, body.refresh_token
        )
    except RefreshReuseError as exc:
        raise _unauthorized(str(exc)) from None
    except RefreshError as exc:
        raise _unauthorized(str(exc)) from None
    return _tokens(svc, user, rotated)


async def logout(request: Request) -> Response:
    svc = services(request)
    body = parse_model(RefreshRequest, await read_json(request, svc.settings.max_body_bytes))
    await anyio.to_thread.run_sync(svc.identity.revoke_refresh, body.refresh_token)
    # The same answer whether or not the token was known: nothing to learn here.
    return Response(status_code=204)


routes = [
    Route("/v1/auth/token", token, methods=["POST"]),
    Route("/v1/auth/refresh", refresh, methods=["POST"]),
    Route("/v1/auth/logout", logout, methods=["POST"]),
]
