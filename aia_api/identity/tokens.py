"""Access tokens: short-lived JWTs, signed and checked with strict options."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from aia_workers.errors import AiaError

__all__ = ["AccessClaims", "InvalidTokenError", "TokenCodec"]

_ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "sub", "jti", "iss", "aud"]
# Authentication methods (RFC 8176): a password, and a one-time code besides
# when the session passed the second factor.
_AMR_PASSWORD = ["pwd"]
_AMR_MFA = ["pwd", "otp", "mfa"]


class InvalidTokenError(AiaError):
    """Raised when an access token is malformed, forged, expired or not for this API."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    tenant: str
    roles: tuple[str, ...]
    token_id: str
    expires_at: float
    # The session behind the token passed the second factor (its ``amr`` says "mfa").
    mfa: bool = False


class TokenCodec:
    """Issues and verifies access tokens for one secret, issuer and audience."""

    def __init__(self, secret: str, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(self, *, subject: str, tenant: str, roles: list[str], mfa: bool = False) -> str:
        """A signed token; ``mfa`` when its session passed the second factor."""
        now = int(time.time())
        claims = {
            "sub": subject,
            "tenant": tenant,
            "roles": roles,
            "amr": _AMR_MFA if mfa else _AMR_PASSWORD,
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": str(uuid.uuid4()),
            "iss": self._issuer,
            "aud": self._audience,
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        try:
            # One algorithm only: "none" and algorithm-confusion tokens fail here.
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("the access token has expired; refresh it") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidTokenError(f"the access token is not valid: {exc}") from None
        tenant, roles = claims.get("tenant"), claims.get("roles")
        if not isinstance(tenant, str) or not isinstance(roles, list):
            raise InvalidTokenError("the access token lacks its tenant or roles")
        # Tokens issued before the claim existed have none: no second factor shown.
        amr = claims.get("amr")
        return AccessClaims(
            subject=str(claims["sub"]),
            tenant=tenant,
            roles=tuple(str(r) for r in roles),
            token_id=str(claims["jti"]),
            expires_at=float(claims["exp"]),
            mfa=isinstance(amr, list) and "mfa" in amr,
        )
