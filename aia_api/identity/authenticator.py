"""Who is calling: resolving a request's credentials to a Principal.

Resolution stays off the database on the hot path: API keys and users are
cached for a short while in this process, and a revocation clears the entry
at once here and, through Redis pub/sub, in every other API process. What
the database did not know is remembered apart, in a small cache of its own,
so a flood of made-up credentials cannot push the valid ones out; and a
credential not known here is charged to its client address before it is
looked up (see ``AddressFailures``), so guessing from one address is bounded
and costs the database nothing past the budget.

Submitting, reading and cancelling tasks need only Redis, so a database
outage must not lock out callers it verified a moment ago: an entry past its
freshness that cannot be checked again because the database is unreachable
is still served, for a bounded time after its last successful check.

A credential that resolved to a Principal is remembered with it, so the next
request carrying it costs a dictionary lookup and two clock reads: no token
decoded, no account or key looked at again. That answer lasts no longer than
the checks behind it (``cache_seconds`` since the key or account was read from
the database, and the key's or the token's expiry), and every invalidation
(``forget``) drops all of them at once: a revocation announced on Redis takes
effect in each API process as soon as the message arrives, as before.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import redis.exceptions

from aia_api.identity.credentials import API_KEY_PREFIX, digest
from aia_api.identity.limits import AddressFailures
from aia_api.identity.principal import Principal
from aia_api.identity.store import ActiveKey, ActiveUser, IdentityStore
from aia_api.identity.tokens import AccessClaims, InvalidTokenError, TokenCodec
from aia_workers.db.session import DATABASE_DOWN
from aia_workers.errors import AiaError

__all__ = [
    "INVALIDATION_CHANNEL",
    "Authenticator",
    "Principal",
    "TooManyFailures",
    "Unauthenticated",
]

log = logging.getLogger(__name__)

INVALIDATION_CHANNEL = "aia:auth:invalidate"
_MAX_VERIFIED = 10_000
# Valid credentials are as many as the database holds; made-up ones are not
# bounded at all, hence the much smaller cache for them.
_MAX_KNOWN = 10_000
_MAX_REFUSED = 1_024
# After the database was found unreachable, entries past their freshness are
# served without asking it again for this long: an outage then costs one
# connection attempt a second, not one per request.
_DATABASE_RECHECK_SECONDS = 1.0


class Unauthenticated(AiaError):
    """Raised when a request carries no usable credentials."""


class TooManyFailures(Unauthenticated):
    """Raised when a client address failed to authenticate too often to have more looked up."""

    def __init__(self, retry_after: int, per_minute: int) -> None:
        super().__init__(
            f"more than {per_minute} failed authentications a minute from this address; "
            f"try again in {retry_after} s"
        )
        self.retry_after = retry_after


class _CheckedCache:
    """Valid credentials, each with the monotonic time it was last checked; least used go first."""

    def __init__(self, max_entries: int = _MAX_KNOWN) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        # Bumped by every drop: a lookup that started before a revocation
        # must not put back what the revocation removed.
        self.generation = 0
        self.refreshing: set[str] = set()

    def __contains__(self, key: str) -> bool:
        # A look that does not count as a use.
        return key in self._entries

    def get(self, key: str) -> tuple[float, Any] | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def checked_at(self, key: str) -> float | None:
        """When ``key``'s entry was last checked (monotonic), without counting as a use."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def put(self, key: str, value: Any, generation: int) -> None:
        if generation != self.generation:
            return
        self._entries[key] = (time.monotonic(), value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)
        self.generation += 1

    def drop_where(self, stale: Callable[[Any], bool]) -> None:
        """Drop every entry whose value ``stale`` picks."""
        for key in [k for k, (_, value) in self._entries.items() if stale(value)]:
            self._entries.pop(key, None)
        self.generation += 1

    def clear(self) -> None:
        self._entries.clear()
        self.generation += 1


class _RefusedCache:
    """Credentials the database did not know, for ``ttl_seconds``; least recently seen go first."""

    def __init__(self, ttl_seconds: float, max_entries: int = _MAX_REFUSED) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        seen = self._seen.get(key)
        if seen is None:
            return False
        if time.monotonic() - seen >= self._ttl:
            del self._seen[key]
            return False
        self._seen.move_to_end(key)
        return True

    def add(self, key: str) -> None:
        self._seen[key] = time.monotonic()
        self._seen.move_to_end(key)
        if len(self._seen) > self._max:
            self._seen.popitem(last=False)

    def discard(self, key: str) -> None:
        self._seen.pop(key, None)

    def clear(self) -> None:
        self._seen.clear()


class Authenticator:
    """Turns an Authorization or X-API-Key header into a Principal."""

    def __init__(
        self,
        codec: TokenCodec,
        store: IdentityStore,
        *,
        cache_seconds: float,
        stale_seconds: float = 0.0,
        publish: Callable[[str], Any] | None = None,
        failures: AddressFailures | None = None,
    ) -> None:
        self.codec = codec
        self._store = store
        self._fresh = cache_seconds
        self._stale = stale_seconds
        self._keys = _CheckedCache()
        self._users = _CheckedCache()
        # Unknown is remembered no longer than valid: a key is never made valid
        # later, but an account's id could be answered for again after a restore.
        self._refused_keys = _RefusedCache(cache_seconds)
        self._refused_users = _RefusedCache(cache_seconds)
        self._failures = failures
        # A client sends the same token until it expires: verify its signature once.
        self._verified: dict[str, AccessClaims] = {}
        # Credentials (an API key's digest, or the token) resolved lately: when
        # their check was made (monotonic), when they expire (epoch seconds)
        # and whom they stand for. See the module's docstring.
        self._resolved: dict[str, tuple[float, float, Principal]] = {}
        self._resolved_generation = 0
        self._publish = publish
        self._recheck_database_at = 0.0

    def resolved(self, authorization: str | None, api_key: str | None) -> Principal | None:
        """The caller, when these credentials resolved here lately and still hold; else None.

        No await, no database, no Redis: what ``authenticate`` would answer for
        a credential it has checked within ``cache_seconds``. None means only
        that ``authenticate`` must decide.
        """
        try:
            credential = self._credential(authorization, api_key)
        except Unauthenticated:
            return None
        return self._recall(self._ident(credential))

    @staticmethod
    def _ident(credential: str) -> str:
        # Keys are kept by their digest only, here as in the database.
        return digest(credential) if credential.startswith(API_KEY_PREFIX) else credential

    def _recall(self, ident: str) -> Principal | None:
        resolved = self._resolved.get(ident)
        if (
            resolved is not None
            and time.monotonic() - resolved[0] < self._fresh
            and time.time() < resolved[1]
        ):
            return resolved[2]
        return None

    async def authenticate(
        self,
        authorization: str | None,
        api_key: str | None,
        *,
        address: str | None = None,
        stale_seconds: float | None = None,
    ) -> Principal:
        """The caller; Unauthenticated when the credentials are missing or not valid.

        With an ``address`` (the client's), a credential not known to be valid
        here is charged to it first, and TooManyFailures raised without looking
        it up once the address has used its budget of failures.

        ``stale_seconds`` (by default the one this Authenticator was made with)
        bounds how long after its last check against the database a cached key
        or account still serves while the database is unreachable. Without a
        usable entry the database error is raised, for the caller to answer 503.
        """
        credential = self._credential(authorization, api_key)
        ident = self._ident(credential)
        principal = self._recall(ident)
        if principal is not None:
            return principal
        if stale_seconds is None:
            stale_seconds = self._stale
        generation = self._resolved_generation
        # A credential verified here before goes straight on, with no closure
        # made for it; one not known is charged to its address first.
        unbudgeted = address is None or self._failures is None
        if credential.startswith(API_KEY_PREFIX):
            if unbudgeted or ident in self._keys:
                principal = await self._key_principal(ident, stale_seconds, generation)
            else:
                principal = await self._charged(
                    address, lambda: self._key_principal(ident, stale_seconds, generation)
                )
            return principal
        claims = self._verified.get(credential)
        if unbudgeted or (
            claims is not None and claims.expires_at > time.time() and claims.subject in self._users
        ):
            return await self._token_principal(credential, stale_seconds, generation)
        return await self._charged(
            address, lambda: self._token_principal(credential, stale_seconds, generation)
        )

    async def _charged(
        self, address: str | None, resolve: Callable[[], Awaitable[Principal]]
    ) -> Principal:
        """``resolve()``, charged to ``address`` first and refunded when it succeeds."""
        if address is None or self._failures is None:
            return await resolve()
        try:
            charge = await self._failures.charge(address)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            # The budget guards the database; with Redis down it cannot be
            # kept, and refusing everyone would also shut out /status and every
            # route that needs no Redis, so the lookup goes on unbudgeted.
            log.warning("failed-authentication budget unavailable: %s", exc)
            return await resolve()
        if charge.refused:
            raise TooManyFailures(charge.retry_after, self._failures.per_minute)
        principal = await resolve()
        with contextlib.suppress(redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            await self._failures.refund(charge)
        return principal

    @staticmethod
    def _credential(authorization: str | None, api_key: str | None) -> str:
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
        return credential

    async def _key_principal(
        self, key_hash: str, stale_seconds: float, generation: int
    ) -> Principal:
        active = await self._lookup(
            self._keys, self._refused_keys, key_hash, self._store.active_key, stale_seconds
        )
        if not isinstance(active, ActiveKey):
            raise Unauthenticated("the API key is not valid, or was revoked or has expired")
        expires_at = math.inf if active.expires_at is None else active.expires_at.timestamp()
        if expires_at <= time.time():
            raise Unauthenticated("the API key has expired")
        principal = active.principal
        self._remember(key_hash, self._keys.checked_at(key_hash), expires_at, principal, generation)
        return principal

    def _remember(
        self,
        ident: str,
        checked_at: float | None,
        expires_at: float,
        principal: Principal,
        generation: int,
    ) -> None:
        """Keep what ``ident`` resolved to, unless something was forgotten since it was looked up.

        An entry served stale (the database unreachable) is not kept: the
        stale path decides about it on every request.
        """
        if (
            checked_at is None
            or generation != self._resolved_generation
            or time.monotonic() - checked_at >= self._fresh
        ):
            return
        if len(self._resolved) >= _MAX_VERIFIED:
            self._resolved.clear()
        self._resolved[ident] = (checked_at, expires_at, principal)

    async def _token_principal(
        self, token: str, stale_seconds: float, generation: int
    ) -> Principal:
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
        # The signature and expiry need no database; the account behind them does.
        active = await self._lookup(
            self._users, self._refused_users, claims.subject, self._store.active_user, stale_seconds
        )
        if not isinstance(active, ActiveUser) or active.tenant != claims.tenant:
            raise Unauthenticated("the account behind this token no longer exists")
        # The role is read from the account, so a demotion takes effect before expiry.
        principal = active.session_principal(mfa=claims.mfa)
        checked_at = self._users.checked_at(claims.subject)
        self._remember(token, checked_at, claims.expires_at, principal, generation)
        return principal

    async def _lookup(
        self,
        cache: _CheckedCache,
        refused: _RefusedCache,
        key: str,
        load: Callable[[str], Any],
        stale_seconds: float,
    ) -> Any:
        entry = cache.get(key)
        now = time.monotonic()
        if entry is not None:
            age = now - entry[0]
            if age < self._fresh:
                return entry[1]
            # One refresh per credential at a time; meanwhile, and while the
            # database is known to be down, the others use what is cached.
            if age < stale_seconds and (key in cache.refreshing or now < self._recheck_database_at):
                return entry[1]
        elif key in refused:
            return None
        generation = cache.generation
        cache.refreshing.add(key)
        try:
            value = await anyio.to_thread.run_sync(load, key)
        except DATABASE_DOWN as exc:
            self._database_down(exc)
            # Read again: a revocation that came in meanwhile has removed it.
            entry = cache.get(key)
            if entry is not None and time.monotonic() - entry[0] < stale_seconds:
                return entry[1]
            raise
        finally:
            cache.refreshing.discard(key)
        if self._recheck_database_at:
            log.warning("the database answers again; credentials are checked against it")
            self._recheck_database_at = 0.0
        if value is None:
            if entry is not None:
                cache.drop(key)
            refused.add(key)
        else:
            cache.put(key, value, generation)
        return value

    def _database_down(self, exc: Exception) -> None:
        if not self._recheck_database_at:
            log.warning(
                "the database is unreachable (%s); credentials checked recently still serve",
                exc.__class__.__name__,
            )
        self._recheck_database_at = time.monotonic() + _DATABASE_RECHECK_SECONDS

    # -- invalidation -------------------------------------------------------------

    def forget(self, message: str) -> None:
        """Apply an invalidation message: ``key:<hash>``, ``user:<id>`` or ``all``."""
        # Which resolved credentials a change reaches (keys made by keys made
        # by the account...) is what the caches below work out; revocations
        # are rare, so every resolved credential is dropped instead.
        self._resolved.clear()
        self._resolved_generation += 1
        kind, _, ident = message.partition(":")
        if kind == "key":
            self._keys.drop(ident)
            self._refused_keys.discard(ident)
            self._drop_keys_made_by(ident)
        elif kind == "user":
            self._users.drop(ident)
            self._refused_users.discard(ident)
            # A key acts with at most its maker's role: a change to the maker reaches it.
            self._drop_keys_made_by(ident)
        else:
            self._keys.clear()
            self._users.clear()
            self._refused_keys.clear()
            self._refused_users.clear()
            self._verified.clear()

    def _drop_keys_made_by(self, maker: str) -> None:
        self._keys.drop_where(lambda key: isinstance(key, ActiveKey) and maker in key.makers)

    async def revoked(self, message: str) -> None:
        """Forget here at once, then tell the other API processes."""
        self.forget(message)
        if self._publish is not None:
            await self._publish(message)
