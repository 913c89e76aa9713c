"""The credential a stream was opened with, kept to check it again while the stream is open."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from aia_api.identity.credentials import API_KEY_PREFIX, digest

__all__ = ["STANDIN_CREDENTIAL", "Credential", "credential_of"]

# Where the middleware leaves a credential that came other than in a header:
# the one a redeemed stream ticket stood for, or a browser session cookie's.
STANDIN_CREDENTIAL = "ticket_credential"


@dataclass(frozen=True, slots=True)
class Credential:
    """The Authorization and X-API-Key header values, as the Authenticator takes them."""

    authorization: str | None
    api_key: str | None

    @classmethod
    def from_headers(cls, headers: Headers) -> Credential:
        return cls(headers.get("authorization"), headers.get("x-api-key"))

    @property
    def secret(self) -> str:
        """The key or token itself, without its scheme."""
        if self.api_key:
            return self.api_key
        return (self.authorization or "").partition(" ")[2].strip()

    @property
    def key_hash(self) -> str | None:
        """The hash revocations name an API key by; None for an access token."""
        secret = self.secret
        return digest(secret) if secret.startswith(API_KEY_PREFIX) else None


def credential_of(conn: HTTPConnection) -> Credential:
    """What ``conn`` authenticated with: its headers, the ticket it redeemed, or its cookie."""
    redeemed = conn.scope.get("state", {}).get(STANDIN_CREDENTIAL)
    if isinstance(redeemed, Credential):
        return redeemed
    return Credential.from_headers(conn.headers)
