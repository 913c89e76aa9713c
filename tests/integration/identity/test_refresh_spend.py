"""Spending a refresh token, raced from many threads, on SQLite and PostgreSQL.

A refresh token works once. Two refreshes of one token at the same moment
are a replay as much as two refreshes a day apart: exactly one may succeed,
and the other must revoke the family, the winner's new token included.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aia_api.identity.roles import Role
from aia_api.identity.store import IdentityStore, RefreshError, RefreshReuseError
from aia_workers.db.identity import RefreshToken
from aia_workers.db.migrate import upgrade
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.settings import Settings
from tests.support import TEST_PASSWORD

pytestmark = pytest.mark.integration

RACERS = 8
# A race is a matter of chance: several tokens, each raced on its own.
ROUNDS = 5


@dataclass
class Identities:
    store: IdentityStore
    sessions: sessionmaker[Session]

    def new_user(self) -> str:
        return self.store.create_user(
            tenant="default",
            username=f"u-{uuid.uuid4().hex[:10]}",
            password=TEST_PASSWORD,
            role=Role.VIEWER,
        ).id

    def tokens_of(self, user_id: str) -> list[RefreshToken]:
        with self.sessions() as session:
            return list(
                session.scalars(select(RefreshToken).where(RefreshToken.user_id == user_id))
            )


@pytest.fixture
def identities(database_url: str, tmp_path: Path) -> Iterator[Identities]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    store = IdentityStore(sessions, refresh_ttl_seconds=3600)
    store.ensure_tenant("default")
    yield Identities(store, sessions)
    engine.dispose()


def _race(identities: Identities, token: str) -> list[str]:
    """Refresh ``token`` from every racer at once; each one's outcome."""
    start = threading.Barrier(RACERS)

    def warm() -> None:
        # Every racer holds a pooled connection before the start.
        start.wait()
        identities.store.has_users()

    def spend() -> str:
        start.wait()
        try:
            identities.store.rotate_refresh(token)
        except RefreshReuseError:
            return "reuse"
        except RefreshError as exc:
            return f"refused: {exc}"
        return "rotated"

    with ThreadPoolExecutor(RACERS) as pool:
        for done in [pool.submit(warm) for _ in range(RACERS)]:
            done.result()
        return [done.result() for done in [pool.submit(spend) for _ in range(RACERS)]]


def test_concurrent_refreshes_of_one_token_let_one_in_and_revoke_the_family(
    identities: Identities,
) -> None:
    for _ in range(ROUNDS):
        user_id = identities.new_user()
        outcomes = _race(identities, identities.store.issue_refresh(user_id))
        assert sorted(outcomes) == ["reuse"] * (RACERS - 1) + ["rotated"], outcomes
        # The family is revoked, the token the winner was given included.
        tokens = identities.tokens_of(user_id)
        assert len(tokens) == 2
        assert all(t.revoked_at is not None for t in tokens), [
            (t.used_at, t.revoked_at) for t in tokens
        ]


def test_a_spent_token_presented_later_revokes_the_family(identities: Identities) -> None:
    user_id = identities.new_user()
    first = identities.store.issue_refresh(user_id)
    second = identities.store.rotate_refresh(first).refresh_token
    with pytest.raises(RefreshReuseError):
        identities.store.rotate_refresh(first)
    with pytest.raises(RefreshError, match="revoked"):
        identities.store.rotate_refresh(second)
