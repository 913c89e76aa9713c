"""``/v1/auth/mfa``: a second factor (TOTP) for people: turn it on or off, or an admin's reset.

Changing a person's MFA asks for their password again, so an access token
alone (a stolen one, say) can neither turn it on, locking the owner out, nor
off. Those password checks are charged to the login throttle like a login:
they must not become a way round it.
"""

from __future__ import annotations

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.client import client_address
from aia_api.http.openapi import SECURED, WITH_BODY, Body, Reply, operation
from aia_api.http.problems import Problem
from aia_api.http.tenancy import principal_of, require
from aia_api.identity.login import AUTH
from aia_api.identity.principal import Principal
from aia_api.identity.responses import MfaEnabled, MfaEnrollment
from aia_api.identity.roles import Permission
from aia_api.identity.throttle import LoginAttempt
from aia_api.services import Services, services
from aia_workers.errors import ConflictError

__all__ = ["CodeRequest", "MfaDisableRequest", "MfaResetRequest", "PasswordRequest", "routes"]


class PasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024, description="The account's password.")


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=6, max_length=16)


class MfaDisableRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024, description="The account's password.")
    code: str = Field(
        min_length=6,
        max_length=16,
        description="The code the authenticator app shows now, or an unused recovery code.",
    )


class MfaResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=150, description="Whose MFA to turn off.")


def _person(request: Request) -> Principal:
    principal = principal_of(request)
    if principal.kind != "user":
        raise Problem(
            403, "forbidden", "Forbidden", "MFA belongs to a person: log in with a password first"
        )
    return principal


def _not_you() -> Problem:
    return Problem(
        403,
        "reauthentication-failed",
        "Not confirmed",
        "the password (or the code) is wrong; this change needs the account's own",
    )


class _Change:
    """One request to change the caller's own MFA: audited, and charged as a login."""

    def __init__(self, request: Request, svc: Services, principal: Principal, action: str) -> None:
        self.request, self.svc, self.principal, self.action = request, svc, principal, action
        self.username = ""
        self._attempt: LoginAttempt | None = None

    async def audit(self, outcome: str, **detail: str) -> None:
        await self.svc.audit.record(
            self.action,
            outcome,
            tenant=self.principal.tenant,
            actor=self.principal.id,
            client_address=client_address(self.request) or "unknown",
            detail={"username": self.username, **detail},
        )

    async def check_password(self, password: str) -> None:
        """Go on when ``password`` is the caller's; else 403 (or 429 while throttled)."""
        svc, user_id = self.svc, self.principal.id
        username = await anyio.to_thread.run_sync(svc.identity.username_of, user_id)
        self.username = username or ""
        attempt = await svc.logins.attempt(self.username, client_address(self.request) or "unknown")
        if attempt.refused:
            await self.audit("locked", reason="throttled")
            raise Problem(
                429,
                "locked-out",
                "Too many failed logins",
                f"too many failed password checks; try again in {attempt.retry_after} s",
                headers={"Retry-After": str(attempt.retry_after)},
            )
        self._attempt = attempt
        if not await anyio.to_thread.run_sync(svc.identity.check_password, user_id, password):
            await self.fail("password")

    async def fail(self, reason: str) -> None:
        """Refuse (403): the attempt stays counted as a failed login."""
        await self.audit("failure", reason=reason)
        raise _not_you()

    async def done(self) -> None:
        """Every check passed: the attempt was no failure, and every API process forgets."""
        if self._attempt is not None:
            await self.svc.logins.succeeded(self._attempt)
        await self.svc.auth.revoked(f"user:{self.principal.id}")
        await self.audit("success")


@operation(
    id="mfaEnroll",
    summary="Start enrolling a second factor (TOTP)",
    tag=AUTH,
    responses={200: Reply("A new secret, in force once verified.", MfaEnrollment)},
    errors=(*SECURED, *WITH_BODY, "409"),
    description=(
        "For a logged-in user (an access token; API keys get 403), with the "
        "account's password again: 403 `reauthentication-failed` when it is wrong, "
        "429 while failed logins throttle the account. Add the secret to an "
        "authenticator app, then send its code to /v1/auth/mfa/verify."
    ),
    body=Body("The account's password.", PasswordRequest),
)
async def mfa_enroll(request: Request) -> Response:
    svc = services(request)
    change = _Change(request, svc, _person(request), "mfa.enroll")
    body = parse_model(PasswordRequest, await read_json(request, svc.settings.max_body_bytes))
    await change.check_password(body.password)
    try:
        secret, uri = await anyio.to_thread.run_sync(svc.identity.start_mfa, change.principal.id)
    except ConflictError as exc:
        raise Problem(409, "mfa-conflict", "MFA conflict", str(exc)) from None
    await change.done()
    return JSONResponse(
        {"secret": secret, "otpauth_uri": uri}, headers={"Cache-Control": "no-store"}
    )


@operation(
    id="mfaVerify",
    summary="Turn the second factor on",
    tag=AUTH,
    responses={200: Reply("MFA is on; logins now need `totp`.", MfaEnabled)},
    errors=(*SECURED, *WITH_BODY),
    description=(
        "For a logged-in user (API keys get 403). 422 when the code does not match "
        "the enrolled secret, or there is none. The code is spent: a login needs "
        "the next one. Access tokens say a session passed MFA (`amr` holds `mfa`) "
        "only from the next login with a code."
    ),
    body=Body("The code the authenticator app shows now.", CodeRequest),
)
async def mfa_verify(request: Request) -> Response:
    svc = services(request)
    change = _Change(request, svc, _person(request), "mfa.enable")
    body = parse_model(CodeRequest, await read_json(request, svc.settings.max_body_bytes))
    codes = await anyio.to_thread.run_sync(svc.identity.confirm_mfa, change.principal.id, body.code)
    if not codes:
        await change.audit("failure", reason="code")
        raise Problem(
            422,
            "mfa-code-invalid",
            "Code not accepted",
            "the code does not match; enroll first, and send the code your app shows now",
        )
    await change.done()
    return JSONResponse(
        {"mfa_enabled": True, "recovery_codes": codes}, headers={"Cache-Control": "no-store"}
    )


@operation(
    id="mfaDisable",
    summary="Turn the second factor off",
    tag=AUTH,
    responses={204: Reply("MFA is off; every session of the account is ended.")},
    errors=(*SECURED, *WITH_BODY, "409"),
    description=(
        "For a logged-in user (API keys get 403), with the password and a current "
        "code or an unused recovery code (which is spent): 403 "
        "`reauthentication-failed` when either is wrong, 429 while failed logins "
        "throttle the account, 409 when MFA is not on. Audited (`mfa.disable`)."
    ),
    body=Body("The password and a code.", MfaDisableRequest),
)
async def mfa_disable(request: Request) -> Response:
    svc = services(request)
    change = _Change(request, svc, _person(request), "mfa.disable")
    body = parse_model(MfaDisableRequest, await read_json(request, svc.settings.max_body_bytes))
    await change.check_password(body.password)
    user_id = change.principal.id
    if not await anyio.to_thread.run_sync(svc.identity.check_second_factor, user_id, body.code):
        await change.fail("code")
    if not await anyio.to_thread.run_sync(svc.identity.disable_mfa, user_id):
        raise Problem(409, "mfa-conflict", "MFA conflict", "MFA is not on for this account")
    await change.done()
    return Response(status_code=204)


@operation(
    id="mfaReset",
    summary="Reset a person's second factor",
    tag=AUTH,
    permission=Permission.USERS_MANAGE,
    responses={204: Reply("MFA is off; every session of the account is ended.")},
    errors=(*SECURED, *WITH_BODY, "404", "409"),
    description=(
        "For someone who lost their device. Needs `users:manage`, and the account "
        "in the caller's tenant (404 otherwise); 409 when its MFA is not on. The "
        "person logs in with the password alone and enrolls again. Audited "
        "(`mfa.reset`). On the host: `aia users reset-mfa`."
    ),
    body=Body("Whose MFA to reset.", MfaResetRequest),
)
async def mfa_reset(request: Request) -> Response:
    admin = require(request, Permission.USERS_MANAGE)
    svc = services(request)
    body = parse_model(MfaResetRequest, await read_json(request, svc.settings.max_body_bytes))
    try:
        user = await anyio.to_thread.run_sync(
            lambda: svc.identity.reset_mfa(body.username, tenant=admin.tenant)
        )
    except ConflictError as exc:
        raise Problem(409, "mfa-conflict", "MFA conflict", str(exc)) from None
    if user is None:
        # Another tenant's account is as unknown as one that does not exist.
        raise Problem(404, "user-not-found", "User not found", f"there is no user {body.username}")
    await svc.auth.revoked(f"user:{user.id}")
    await svc.audit.record(
        "mfa.reset",
        "success",
        tenant=admin.tenant,
        actor=admin.actor,
        client_address=client_address(request) or "unknown",
        detail={"user_id": user.id, "username": body.username, "sessions_revoked": True},
    )
    return Response(status_code=204)


routes = [
    Route("/v1/auth/mfa/enroll", mfa_enroll, methods=["POST"]),
    Route("/v1/auth/mfa/verify", mfa_verify, methods=["POST"]),
    Route("/v1/auth/mfa/disable", mfa_disable, methods=["POST"]),
    Route("/v1/auth/mfa/reset", mfa_reset, methods=["POST"]),
]
