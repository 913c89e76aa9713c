"""Who is calling: resolving a request's credentials to a Principal.

Resolution stays off the database on the hot path: API keys and users are
cached for a short while in this process, and a revocation clears the entry
at once here and, through Redis pub/sub, in every other API process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread

from aia_api.auth.credentials import API_KEY_PREFIX, digest
from aia_api.auth.identity import Principal
from aia_api.auth.store import ActiveKey, ActiveUser, IdentityStore
from aia_api.auth.tokens import AccessClaims, InvalidTokenError, TokenCodec
from aia_workers.errors import AiaError

__all__ = ["INVALIDATION_CHANNEL", "Authenticator", "Principal", "Unauthenticated"]

INVALIDATION_CHANNEL = "aia:auth:invalidate"
_MAX_VERIFIED = 10_000


class Unauthenticated(AiaError):
    """Raised when a request carries no usable credentials."""


class _TTLCache:
    """A small map whose entries lapse after ``ttl`` seconds."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> tuple[bool, Any]:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: str, value: Any) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self._ttl, value)

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


class Authenticator:
    """Turns an Authorization or X-API-Key header into a Principal."""

    def __init__(
        self,
        codec: TokenCodec,
        store: IdentityStore,
        *,
        cache_seconds: float,
        publish: Callable[[str], Any] | None = None,
    ) -> None:
        self.codec = codec
        self._store = store
        self._keys = _TTLCache(cache_seconds)
        self._users = _TTLCache(cache_seconds)
        # A client sends the same token until it expires: verify its signature once.
        self._verified: dict[str, AccessClaims] = {}
        self._publish = publish

    async def authenticate(self, authorization: str | None, api_key: str | None) -> Principal:
        credential = api_key
        if credential is None and authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthenticated("use 'Authorization: Bearer <token or API key>'")
            credential = value.strip()
        if not credential:
            raise Unauthenticated(
                "this route needs credentials: 'Authorization: Bearer <token>' or 'X-API-Key'"
            )
        if credential.startswith(API_KEY_PREFIX):
            return await self._key_principal(credential)
        return await self._token_principal(credential)

    async def _key_principal(self, key: str) -> Principal:
        key_hash = digest(key)
        hit, active = self._keys.get(key_hash)
        if not hit:
            active = await anyio.to_thread.run_sync(self._store.active_key, key_hash)
            self._keys.put(key_hash, active)
        if not isinstance(active, ActiveKey):
            raise Unauthenticated("the API key is not valid, or was revoked or has expired")
        if active.expires_at is not None and active.expires_at.timestamp() <= time.time():
            raise Unauthenticated("the API key has expired")
        return active.principal

    async def _token_principal(self, token: str) -> Principal:
        claims = self._verified.get(token)
        if claims is None or claims.expires_at <= time.time():
            try:
                claims = self.codec.verify(token)
            except InvalidTokenError as exc:
                self._verified.pop(token, None)
                raise Unauthenticated(str(exc)) from None
            if len(self._verified) >= _MAX_VERIFIED:
                self._verified.clear()
            self._verified[token] = claims
        hit, active = self._users.get(claims.subject)
        if not hit:
            active = await anyio.to_thread.run_sync(self._store.active_user, claims.subject)
            self._users.put(claims.subject, active)
        if not isinstance(active, ActiveUser) or active.tenant != claims.tenant:
            raise Unauthenticated("the account behind this token no longer exists")
        # The role is read from the account, so a demotion takes effect before expiry.
        return active.principal

    # -- invalidation -------------------------------------------------------------

    def forget(self, message: str) -> None:
        """Apply an invalidation message: ``key:<hash>``, ``user:<id>`` or ``all``."""
        kind, _, ident = message.partition(":")
        if kind == "key":
            self._keys.drop(ident)
        elif kind == "user":
            self._users.drop(ident)
        else:
            self._keys.clear()
            self._users.clear()
            self._verified.clear()

    async def revoked(self, message: str) -> None:
        """Forget here at once, then tell the other API processes."""
        self.forget(message)
        if self._publish is not None:
            await self._publish(message)
