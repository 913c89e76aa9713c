"""``/v1/auth/session``: sign a browser in and out (the cookie and CSRF rules: ``browser.py``).

A user signs in with a password (and a second factor when the account has
MFA); the session then lasts as long as the access token it holds. Someone
with an API key signs in with the key; that session lasts until the browser
closes, or until the key expires or is revoked.
"""

from __future__ import annotations

import time
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.client import client_address
from aia_api.http.openapi import SECURED, WITH_BODY, Body, Reply, operation
from aia_api.http.responses import Closed
from aia_api.http.tenancy import principal_of
from aia_api.identity.authenticator import TooManyFailures, Unauthenticated
from aia_api.identity.browser import CSRF_HEADER, BrowserSessions, session_cookie
from aia_api.identity.credentials import API_KEY_PREFIX
from aia_api.identity.login import AUTH, TokenRequest, verified_user
from aia_api.identity.principal import Principal
from aia_api.identity.refusals import too_many_failures, unauthenticated
from aia_api.identity.roles import Role
from aia_api.identity.tokens import InvalidTokenError
from aia_api.services import services

__all__ = ["PUBLIC_PATHS", "SessionRequest", "SessionView", "routes"]

_PATH = "/v1/auth/session"
# Signing in is public; reading and ending a session need it (or other credentials).
PUBLIC_PATHS = (f"POST {_PATH}",)


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(default=None, min_length=1, max_length=150)
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16)
    api_key: str | None = Field(
        default=None, min_length=1, max_length=200, description="Instead of a username."
    )

    @model_validator(mode="after")
    def _one_way_in(self) -> Self:
        with_password = self.username is not None or self.password is not None
        if self.api_key is not None and with_password:
            raise ValueError("send either username and password, or api_key, not both")
        if self.api_key is None and (self.username is None or self.password is None):
            raise ValueError("send username and password (and totp with MFA on), or api_key")
        return self


class SessionPrincipal(Closed):
    kind: str = Field(description="`user` or `key`.")
    id: str
    tenant: str
    role: Role
    mfa: bool


class SessionView(Closed):
    csrf_token: str | None = Field(
        description=(
            f"Send as `{CSRF_HEADER}` on every request that is not a GET: the cookie alone "
            "does not do for those. Null when the caller did not authenticate by the cookie."
        )
    )
    expires_in: int | None = Field(
        description="Seconds the session lasts; null: until the browser closes."
    )
    principal: SessionPrincipal


def _view(principal: Principal, csrf_token: str | None, expires_in: int | None) -> dict[str, Any]:
    return {
        "csrf_token": csrf_token,
        "expires_in": expires_in,
        "principal": {
            "kind": principal.kind,
            "id": principal.id,
            "tenant": principal.tenant,
            "role": principal.role.value,
            "mfa": principal.mfa,
        },
    }


@operation(
    id="signIn",
    summary="Sign a browser in",
    tag=AUTH,
    responses={
        200: Reply(
            "Signed in: the session is in an HttpOnly, Secure, SameSite=Strict cookie; "
            "keep csrf_token in memory.",
            SessionView,
        )
    },
    errors=(*WITH_BODY, "401", "429", "503"),
    description=(
        "Public. For the dashboard at /ui: a password (with `totp` when the account has "
        "MFA; 401 `mfa-required` without it) or an API key. Throttled and audited like "
        "POST /v1/auth/token. No token is returned in the body."
    ),
    body=Body("Username and password (and TOTP), or an API key.", SessionRequest),
    public=True,
)
async def sign_in(request: Request) -> Response:
    svc = services(request)
    body = parse_model(SessionRequest, await read_json(request, svc.settings.max_body_bytes))
    if body.api_key is not None:
        try:
            principal = await svc.auth.authenticate(
                None, body.api_key, address=client_address(request) or "unknown"
            )
        except TooManyFailures as exc:
            raise too_many_failures(exc) from None
        except Unauthenticated as exc:
            raise unauthenticated(str(exc)) from None
        credential, expires_in = body.api_key, None
    else:
        login = TokenRequest.model_validate(body.model_dump(exclude={"api_key"}))
        user = await verified_user(svc, request, login)
        credential = svc.auth.codec.issue(
            subject=user.id, tenant=user.tenant, roles=[user.role.value], mfa=user.mfa_enabled
        )
        expires_in = svc.auth.codec.ttl_seconds
        principal = user.session_principal(mfa=user.mfa_enabled)
    return JSONResponse(
        _view(principal, svc.browser.csrf_token(credential), expires_in),
        headers={
            "Cache-Control": "no-store",
            "Set-Cookie": BrowserSessions.set_cookie(credential, expires_in),
        },
    )


@operation(
    id="getSession",
    summary="Who this session is",
    tag=AUTH,
    responses={200: Reply("The caller, and the CSRF token of its session cookie.", SessionView)},
    errors=SECURED,
    description=(
        "With the session cookie, its CSRF token again (a reloaded page has lost it). "
        "401 once the session expired or its credential was revoked."
    ),
)
async def get_session(request: Request) -> Response:
    svc = services(request)
    principal = principal_of(request)
    cookie = session_cookie(request.headers)
    by_cookie = cookie is not None and not (
        request.headers.get("authorization") or request.headers.get("x-api-key")
    )
    csrf = svc.browser.csrf_token(cookie) if by_cookie and cookie is not None else None
    expires_in = None
    if by_cookie and cookie is not None and not cookie.startswith(API_KEY_PREFIX):
        try:
            expires_in = max(0, int(svc.auth.codec.verify(cookie).expires_at - time.time()))
        except InvalidTokenError:
            expires_in = 0
    return JSONResponse(_view(principal, csrf, expires_in), headers={"Cache-Control": "no-store"})


@operation(
    id="signOut",
    summary="Sign a browser out",
    tag=AUTH,
    responses={204: Reply("The session cookie is cleared.")},
    errors=SECURED,
    description=f"With the session cookie, needs `{CSRF_HEADER}` like every other change.",
)
async def sign_out(request: Request) -> Response:
    principal_of(request)
    return Response(
        status_code=204,
        headers={"Cache-Control": "no-store", "Set-Cookie": BrowserSessions.clear_cookie()},
    )


routes = [
    Route(_PATH, sign_in, methods=["POST"]),
    Route(_PATH, get_session, methods=["GET"]),
    Route(_PATH, sign_out, methods=["DELETE"]),
]
