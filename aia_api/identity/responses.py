"""Response models of the identity routes: tokens, MFA, API keys, the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from aia_api.http.responses import Closed, PageLinks
from aia_api.identity.roles import Role

__all__ = [
    "AuditEntry",
    "AuditPage",
    "KeyList",
    "KeyView",
    "MfaEnabled",
    "MfaEnrollment",
    "NewKey",
    "TokenResponse",
]


class TokenResponse(Closed):
    access_token: str = Field(description="A JWT; send as `Authorization: Bearer <token>`.")
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str = Field(description="Works once: trade it at /v1/auth/refresh.")
    refresh_expires_in: int = Field(description="Seconds the refresh token is valid.")


class MfaEnrollment(Closed):
    secret: str = Field(description="The TOTP secret (base32), not in force until verified.")
    otpauth_uri: str = Field(description="The same as an `otpauth://` URI, for a QR code.")


class MfaEnabled(Closed):
    mfa_enabled: Literal[True]
    recovery_codes: list[str] = Field(description="One-time codes for a lost device; shown once.")


class KeyView(Closed):
    id: str
    name: str
    role: Role
    prefix: str = Field(description="The first characters of the key, to recognise it by.")
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class NewKey(KeyView):
    key: str = Field(description="The key itself (`aia_...`), shown this once only.")


class KeyList(Closed):
    items: list[KeyView]


class AuditEntry(Closed):
    id: str
    action: str = Field(
        description="e.g. login, lockout, refresh.reuse, key.create, key.revoke, "
        "mfa.enroll, mfa.enable, mfa.disable, mfa.reset, role.change, user.delete, "
        "permission.denied"
    )
    outcome: str = Field(description="success, failure or locked")
    actor: str | None
    client_address: str | None
    detail: dict[str, Any] | None
    created_at: str


class AuditPage(Closed):
    """One page of the tenant's audit log, newest first."""

    items: list[AuditEntry]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")
    links: PageLinks
