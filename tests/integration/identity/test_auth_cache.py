"""Cached credentials across a real database outage: who stays in, who does not.

And what made-up credentials cost: the database sees each address's budget of
them and no more, and a flood of them cannot push the valid ones out.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from aia_api.identity.authenticator import Authenticator, TooManyFailures, Unauthenticated
from aia_api.identity.credentials import digest, new_api_key
from aia_api.identity.limits import AddressFailures
from aia_api.identity.roles import Role
from aia_api.identity.store import IdentityStore
from aia_api.identity.tokens import TokenCodec
from aia_workers.db.migrate import upgrade
from aia_workers.db.session import DATABASE_DOWN, make_engine, make_sessionmaker
from aia_workers.settings import Settings
from tests.pgserver import PostgresServer, running_postgres
from tests.support import TEST_PASSWORD, wait_for

pytestmark = pytest.mark.integration

_STALE = 300.0


@dataclass
class Identities:
    server: PostgresServer
    store: IdentityStore
    codec: TokenCodec

    def authenticator(
        self, *, cache_seconds: float = 0.0, failures: AddressFailures | None = None
    ) -> Authenticator:
        # No freshness by default: every call past the first would ask the database.
        return Authenticator(self.codec, self.store, cache_seconds=cache_seconds, failures=failures)

    def new_key(self) -> str:
        return self.store.create_key(
            tenant="default", name="k", role=Role.OPERATOR, created_by=None
        )[1]

    def new_token(self) -> tuple[str, str]:
        """An access token of a new account, and the account's id."""
        user = self.store.create_user(
            tenant="default",
            username=f"u{time.time_ns()}",
            password=TEST_PASSWORD,
            role=Role.VIEWER,
        )
        return self.codec.issue(subject=user.id, tenant="default", roles=["viewer"]), user.id


@pytest.fixture(scope="module")
def identities() -> Iterator[Identities]:
    with running_postgres() as server, tempfile.TemporaryDirectory() as home:
        settings = Settings(database_url=server.createdb("aia"), data_home=Path(home))
        upgrade(settings)
        engine = make_engine(settings)
        store = IdentityStore(make_sessionmaker(engine), refresh_ttl_seconds=3600)
        store.ensure_tenant("default")
        codec = TokenCodec("s" * 48, issuer="aia", audience="aia-api", ttl_seconds=600)
        yield Identities(server, store, codec)
        engine.dispose()


@contextlib.contextmanager
def outage(server: PostgresServer) -> Iterator[None]:
    server.stop()
    try:
        yield
    finally:
        server.start()


def _key(auth: Authenticator, key: str, stale: float = _STALE) -> str:
    principal = asyncio.run(auth.authenticate(None, key, stale_seconds=stale))
    return principal.id


def _bearer(auth: Authenticator, token: str, stale: float = _STALE) -> str:
    principal = asyncio.run(auth.authenticate(f"Bearer {token}", None, stale_seconds=stale))
    return principal.id


def test_a_key_checked_recently_serves_through_an_outage_until_the_bound(
    identities: Identities,
) -> None:
    auth = identities.authenticator()
    key = identities.new_key()
    key_id = _key(auth, key)
    checked = time.monotonic()
    with outage(identities.server):
        assert _key(auth, key) == key_id
        # Without a bound, or once it has passed, the same entry is not good enough.
        with pytest.raises(DATABASE_DOWN):
            _key(auth, key, stale=0.0)
        bound = 0.05
        time.sleep(max(0.0, checked + bound - time.monotonic()))
        with pytest.raises(DATABASE_DOWN):
            _key(auth, key, stale=bound)
        # Failing does not spend the entry: it still serves within a longer bound.
        assert _key(auth, key) == key_id


def test_a_resolved_credential_is_answered_from_memory_until_forgotten(
    identities: Identities,
) -> None:
    auth = identities.authenticator(cache_seconds=600)
    key = identities.new_key()
    token, user_id = identities.new_token()
    key_id = _key(auth, key)
    assert _bearer(auth, token) == user_id
    with outage(identities.server):
        # Fresh answers need neither the database nor the stale bound.
        assert _key(auth, key, stale=0.0) == key_id
        assert _bearer(auth, token, stale=0.0) == user_id
        remembered = auth.resolved(None, key)
        assert remembered is not None
        assert remembered.id == key_id
        # Any revocation drops every remembered answer: the key's goes to the
        # database (down), the token's to the account's own cache entry.
        auth.forget(f"key:{digest(key)}")
        assert auth.resolved(None, key) is None
        assert auth.resolved(f"Bearer {token}", None) is None
        with pytest.raises(DATABASE_DOWN):
            _key(auth, key, stale=0.0)
        assert _bearer(auth, token, stale=0.0) == user_id
        auth.forget(f"user:{user_id}")
        with pytest.raises(DATABASE_DOWN):
            _bearer(auth, token, stale=0.0)


def test_an_expired_token_is_not_answered_from_memory(identities: Identities) -> None:
    codec = TokenCodec("s" * 48, issuer="aia", audience="aia-api", ttl_seconds=1)
    auth = Authenticator(codec, identities.store, cache_seconds=600)
    user_id = identities.new_token()[1]
    token = codec.issue(subject=user_id, tenant="default", roles=["viewer"])
    assert _bearer(auth, token) == user_id
    wait_for(lambda: auth.resolved(f"Bearer {token}", None) is None, 5, 0.1, "the token to lapse")
    with pytest.raises(Unauthenticated, match="expired"):
        _bearer(auth, token)


def test_a_key_never_seen_gets_the_database_error(identities: Identities) -> None:
    auth = identities.authenticator()
    key = identities.new_key()
    with outage(identities.server), pytest.raises(DATABASE_DOWN):
        _key(auth, key)


def test_revocation_during_an_outage_shuts_the_key_out_at_once(identities: Identities) -> None:
    auth = identities.authenticator()
    first, second = identities.new_key(), identities.new_key()
    _key(auth, first)
    _key(auth, second)
    with outage(identities.server):
        auth.forget(f"key:{digest(first)}")
        with pytest.raises(DATABASE_DOWN):
            _key(auth, first)
        assert _key(auth, second)
        auth.forget("all")
        with pytest.raises(DATABASE_DOWN):
            _key(auth, second)


def test_an_access_token_follows_the_same_rule(identities: Identities) -> None:
    auth = identities.authenticator()
    token, user_id = identities.new_token()
    assert _bearer(auth, token) == user_id
    unseen, _ = identities.new_token()
    with outage(identities.server):
        assert _bearer(auth, token) == user_id
        with pytest.raises(DATABASE_DOWN):
            _bearer(auth, unseen)
        # A deleted or demoted account is announced as user:<id>.
        auth.forget(f"user:{user_id}")
        with pytest.raises(DATABASE_DOWN):
            _bearer(auth, token)


def test_after_the_outage_the_database_decides_again(identities: Identities) -> None:
    auth = identities.authenticator()
    key = identities.new_key()
    key_id = _key(auth, key)
    with outage(identities.server):
        assert _key(auth, key) == key_id
    # The pool's connections died with the server; a new credential is checked
    # on a fresh one, with no error for the first request after the restart.
    assert _key(auth, identities.new_key())
    # Revoked with no announcement reaching this process: only a check against
    # the database can tell, and stale entries must not outlive the outage.
    assert identities.store.revoke_key("default", key_id) is not None

    def refused() -> bool:
        try:
            _key(auth, key)
        except Unauthenticated:
            return True
        return False

    wait_for(refused, 10, 0.1, "the revoked key to be refused")


# -- made-up credentials ---------------------------------------------------------------

BUDGET = 5
BURST = 30
# Past the number of valid credentials a process keeps: the old cache, shared
# with the unknown ones, was emptied whole at this size.
FLOOD = 10_001


async def _outcomes(auth: Authenticator, keys: list[str], address: str) -> list[str]:
    """Authenticate every key from ``address`` at once; what each one got."""

    async def one(key: str) -> str:
        try:
            await auth.authenticate(None, key, address=address, stale_seconds=_STALE)
        except TooManyFailures:
            return "too many"
        except Unauthenticated:
            return "unauthenticated"
        except DATABASE_DOWN:
            return "database down"
        return "ok"

    return list(await asyncio.gather(*(one(key) for key in keys)))


def test_a_burst_of_bad_keys_from_one_address_costs_the_database_its_budget(
    identities: Identities, redis_url: str
) -> None:
    good = identities.new_key()

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        auth = identities.authenticator(
            cache_seconds=600, failures=AddressFailures(client, per_minute=BUDGET)
        )
        assert await _outcomes(auth, [good], "203.0.113.9") == ["ok"]
        # With the database down, every key that reaches it answers
        # "database down": only the budget may, the rest are refused before.
        with outage(identities.server):
            made_up = [new_api_key() for _ in range(BURST)]
            outcomes = await _outcomes(auth, made_up, "203.0.113.9")
            assert outcomes.count("database down") == BUDGET, outcomes
            assert outcomes.count("too many") == BURST - BUDGET
            # A key known here costs nothing to check: it still gets in.
            assert await _outcomes(auth, [good], "203.0.113.9") == ["ok"]
        # Another address has its own budget.
        others = await _outcomes(auth, [new_api_key() for _ in range(BURST)], "198.51.100.7")
        assert sorted(set(others)) == ["too many", "unauthenticated"]
        assert others.count("unauthenticated") == BUDGET
        await client.aclose()

    asyncio.run(scenario())


def test_a_refused_key_is_remembered_apart(identities: Identities) -> None:
    auth = identities.authenticator(cache_seconds=600)
    made_up = new_api_key()
    with pytest.raises(Unauthenticated):
        _key(auth, made_up)
    # Answered from memory: the database is not asked again.
    with outage(identities.server), pytest.raises(Unauthenticated):
        _key(auth, made_up)


def test_valid_keys_stay_cached_under_a_flood_of_made_up_ones(identities: Identities) -> None:
    auth = identities.authenticator(cache_seconds=600)
    good = identities.new_key()
    good_id = _key(auth, good)

    async def flood() -> None:
        for start in range(0, FLOOD, 100):
            made_up = [new_api_key() for _ in range(min(100, FLOOD - start))]
            assert set(await _outcomes(auth, made_up, "unused")) == {"unauthenticated"}

    asyncio.run(flood())
    # Still cached: no database needed to let it in.
    with outage(identities.server):
        assert _key(auth, good) == good_id
