"""``/v1/auth``: log in for tokens, rotate the refresh token, log out (MFA: ``mfa.py``)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.client import client_address
from aia_api.http.openapi import WITH_BODY, Body, Reply, Tag, operation
from aia_api.http.problems import Problem
from aia_api.identity.refusals import unauthenticated
from aia_api.identity.responses import TokenResponse
from aia_api.identity.store import ActiveUser, RefreshError, RefreshReuseError
from aia_api.identity.throttle import LoginAttempt
from aia_api.services import Services, services

__all__ = ["AUTH", "PUBLIC_PATHS", "TokenRequest", "routes", "verified_user"]

PUBLIC_PATHS = ("/v1/auth/token", "/v1/auth/refresh", "/v1/auth/logout")

AUTH = Tag("auth", "Tokens for users.")

# Errors of the public routes: their body, their per-address rate limit, Redis.
_BODY_ERRORS = (*WITH_BODY, "429", "503")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=200)


def _tokens(svc: Services, user: ActiveUser, refresh: str, *, mfa: bool) -> Response:
    """``mfa`` when the session passed the second factor: the token says so (``amr``)."""
    access = svc.auth.codec.issue(
        subject=user.id, tenant=user.tenant, roles=[user.role.value], mfa=mfa
    )
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


@operation(
    id="login",
    summary="Log in",
    tag=AUTH,
    responses={200: Reply("An access token and a refresh token.", TokenResponse)},
    errors=(*_BODY_ERRORS, "401"),
    description=(
        "Public. Rate limited per client address. Failed logins are budgeted "
        "per account and address, per account and per address; past a budget "
        "each further attempt waits, the wait doubling (429 locked-out with "
        "Retry-After, even for the right password)."
    ),
    body=Body("Username and password.", TokenRequest),
    public=True,
)
async def token(request: Request) -> Response:
    svc = services(request)
    body = parse_model(TokenRequest, await read_json(request, svc.settings.max_body_bytes))
    user = await verified_user(svc, request, body)
    # Past this point an account with MFA on has passed it.
    refresh = await anyio.to_thread.run_sync(
        lambda: svc.identity.issue_refresh(user.id, mfa=user.mfa_enabled)
    )
    return _tokens(svc, user, refresh, mfa=user.mfa_enabled)


async def verified_user(svc: Services, request: Request, body: TokenRequest) -> ActiveUser:
    """The account ``body`` names, once its password (and second factor) are right.

    Throttled and audited like every login; a Problem (401, 429) otherwise.
    """
    address = client_address(request) or "unknown"
    tenant = await anyio.to_thread.run_sync(svc.identity.tenant_of_username, body.username)
    audit: dict[str, Any] = {"tenant": tenant, "actor": body.username, "client_address": address}
    # Counted as a failure before the password is looked at, and taken back
    # only when the login succeeds: a parallel burst gets the budget, no more.
    attempt = await svc.logins.attempt(body.username, address)
    if attempt.refused:
        # Nothing is checked meanwhile: the right password does not help.
        await svc.audit.record(
            "login", "locked", **audit, detail={"retry_after": attempt.retry_after}
        )
        raise Problem(
            429,
            "locked-out",
            "Too many failed logins",
            "too many failed logins for this account from this address, or from this "
            f"address; each one doubles the wait. Try again in {attempt.retry_after} s",
            headers={"Retry-After": str(attempt.retry_after)},
        )
    user = await anyio.to_thread.run_sync(svc.identity.authenticate, body.username, body.password)
    if user is None:
        await svc.audit.record("login", "failure", **audit)
        await _record_slowdown(svc, attempt, audit)
        raise unauthenticated("the username or password is wrong")
    if user.mfa_enabled:
        verified = body.totp is not None and await anyio.to_thread.run_sync(
            svc.identity.check_second_factor, user.id, body.totp
        )
        if not verified:
            await svc.audit.record("login", "failure", **audit, detail={"reason": "mfa"})
            await _record_slowdown(svc, attempt, audit)
            raise Problem(
                401,
                "mfa-required",
                "A second factor is needed",
                "this account uses MFA: send the current code from the authenticator app "
                "(or a recovery code) as totp",
                headers={"WWW-Authenticate": 'Bearer realm="aia"'},
            )
    await svc.logins.succeeded(attempt)
    await svc.audit.record("login", "success", **audit)
    return user


async def _record_slowdown(svc: Services, attempt: LoginAttempt, audit: dict[str, Any]) -> None:
    """Audit the failure that spent a budget: from the next one on, each waits."""
    if attempt.spent:
        detail = {"budgets": list(attempt.spent)}
        await svc.audit.record("lockout", "success", **audit, detail=detail)


@operation(
    id="refresh",
    summary="Rotate the refresh token",
    tag=AUTH,
    responses={200: Reply("New tokens; the old refresh token is spent.", TokenResponse)},
    errors=(*_BODY_ERRORS, "401"),
    description=(
        "Public. A refresh token works once; using a spent one revokes its whole family (401)."
    ),
    body=Body("A refresh token from /v1/auth/token.", RefreshRequest),
    public=True,
)
async def refresh(request: Request) -> Response:
    svc = services(request)
    body = parse_model(RefreshRequest, await read_json(request, svc.settings.max_body_bytes))
    try:
        rotation = await anyio.to_thread.run_sync(svc.identity.rotate_refresh, body.refresh_token)
    except RefreshReuseError as exc:
        await svc.audit.record(
            "refresh.reuse",
            "failure",
            tenant=exc.tenant or None,
            actor=exc.user_id,
            client_address=client_address(request) or "unknown",
            detail={"family_revoked": True},
        )
        raise unauthenticated(str(exc)) from None
    except RefreshError as exc:
        raise unauthenticated(str(exc)) from None
    return _tokens(svc, rotation.user, rotation.refresh_token, mfa=rotation.mfa)


@operation(
    id="logout",
    summary="Log out",
    tag=AUTH,
    responses={204: Reply("The refresh token is revoked (known or not).")},
    errors=_BODY_ERRORS,
    description="Public: the refresh token is the credential.",
    body=Body("A refresh token from /v1/auth/token.", RefreshRequest),
    public=True,
)
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
