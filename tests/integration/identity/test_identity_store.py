"""MFA codes and API keys in the identity store, on SQLite and PostgreSQL.

Two stores on two engines stand for two API processes: a TOTP code or a
recovery code must be accepted once across them, however close the attempts.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyotp
import pytest

from aia_api.identity.credentials import digest
from aia_api.identity.roles import Role
from aia_api.identity.store import IdentityStore
from aia_workers.db.migrate import upgrade
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.secretbox import SecretBox, new_key
from aia_workers.settings import Settings
from tests.support import TEST_PASSWORD

pytestmark = pytest.mark.integration

TENANT = "t1"
# Attempts raced against each other, spread over the two stores.
RACERS = 8


@pytest.fixture
def stores(database_url: str, tmp_path: Path) -> Iterator[tuple[IdentityStore, IdentityStore]]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engines = [make_engine(settings), make_engine(settings)]
    box = SecretBox([new_key()])
    first, second = (
        IdentityStore(make_sessionmaker(e), refresh_ttl_seconds=3600, box=box) for e in engines
    )
    first.ensure_tenant(TENANT)
    yield first, second
    for engine in engines:
        engine.dispose()


def _user(store: IdentityStore, role: Role = Role.OPERATOR) -> tuple[str, str]:
    """A new account's id and username."""
    username = f"u-{uuid.uuid4().hex[:10]}"
    user = store.create_user(tenant=TENANT, username=username, password=TEST_PASSWORD, role=role)
    return user.id, username


def _enrolled(store: IdentityStore) -> tuple[str, pyotp.TOTP, list[str]]:
    """A user with MFA on (confirmed with the current code), its TOTP and recovery codes."""
    user_id, _ = _user(store)
    secret, _ = store.start_mfa(user_id)
    totp = pyotp.TOTP(secret)
    codes = store.confirm_mfa(user_id, totp.now())
    assert codes is not None
    return user_id, totp, codes


def _next_code(totp: pyotp.TOTP) -> str:
    # The next step's code: inside the verifier's window, and not yet used.
    return totp.at(time.time() + totp.interval)


def _race(attempts: list[Callable[[], bool]], *stores: IdentityStore) -> list[bool]:
    """Run every attempt at once (as near as threads allow); their answers.

    Each store's pool is filled first, so that opening a connection does not
    space the attempts out.
    """
    start = threading.Barrier(len(attempts))

    def run(attempt: Callable[[], bool]) -> bool:
        start.wait()
        return attempt()

    with ThreadPoolExecutor(len(attempts)) as pool:
        warm = [lambda i=i: stores[i % len(stores)].has_users() for i in range(len(attempts))]
        list(pool.map(run, warm))
        return list(pool.map(run, attempts))


def test_a_totp_code_is_accepted_once(stores: tuple[IdentityStore, IdentityStore]) -> None:
    first, second = stores
    user_id, totp, _ = _enrolled(first)
    code = _next_code(totp)
    assert first.check_second_factor(user_id, code)
    assert not first.check_second_factor(user_id, code)
    assert not second.check_second_factor(user_id, code)
    # The enrolment's own code, and any older one, are spent too.
    assert not second.check_second_factor(user_id, totp.now())


def test_concurrent_uses_of_one_totp_code_let_exactly_one_in(
    stores: tuple[IdentityStore, IdentityStore],
) -> None:
    first, _ = stores
    user_id, totp, _ = _enrolled(first)
    code = _next_code(totp)
    answers = _race(
        [lambda s=stores[i % 2]: s.check_second_factor(user_id, code) for i in range(RACERS)],
        *stores,
    )
    assert answers.count(True) == 1


def test_concurrent_uses_of_one_recovery_code_let_exactly_one_in(
    stores: tuple[IdentityStore, IdentityStore],
) -> None:
    first, second = stores
    user_id, _, codes = _enrolled(first)
    answers = _race(
        [lambda s=stores[i % 2]: s.check_second_factor(user_id, codes[0]) for i in range(RACERS)],
        *stores,
    )
    assert answers.count(True) == 1
    assert not second.check_second_factor(user_id, codes[0])


def test_different_recovery_codes_used_at_once_all_work(
    stores: tuple[IdentityStore, IdentityStore],
) -> None:
    first, second = stores
    user_id, _, codes = _enrolled(first)
    answers = _race(
        [lambda i=i: stores[i % 2].check_second_factor(user_id, codes[i]) for i in range(4)],
        *stores,
    )
    assert answers == [True] * 4
    # Each is spent, the other six are not.
    assert not any(second.check_second_factor(user_id, c) for c in codes[:4])
    assert all(first.check_second_factor(user_id, c) for c in codes[4:])


def test_disabling_mfa_forgets_the_secret_and_the_codes(
    stores: tuple[IdentityStore, IdentityStore],
) -> None:
    first, _ = stores
    user_id, totp, codes = _enrolled(first)
    assert first.disable_mfa(user_id)
    active = first.active_user(user_id)
    assert active is not None
    assert not active.mfa_enabled
    assert not first.check_second_factor(user_id, _next_code(totp))
    assert not first.check_second_factor(user_id, codes[0])
    assert not first.disable_mfa(user_id)  # nothing left to turn off


def test_a_reset_turns_mfa_off_and_ends_every_session(
    stores: tuple[IdentityStore, IdentityStore],
) -> None:
    first, second = stores
    user_id, _, _ = _enrolled(first)
    refresh = first.issue_refresh(user_id, mfa=True)
    username = first.username_of(user_id)
    assert username is not None
    assert second.reset_mfa(username, tenant="another tenant") is None
    reset = second.reset_mfa(username, tenant=TENANT)
    assert reset is not None
    assert reset.id == user_id
    assert not reset.mfa_enabled
    with pytest.raises(Exception, match="revoked"):
        first.rotate_refresh(refresh)


def test_a_refreshed_session_keeps_whether_it_passed_mfa(
    stores: tuple[IdentityStore, IdentityStore],
) -> None:
    first, _ = stores
    user_id, _ = _user(first)
    with_mfa = first.rotate_refresh(first.issue_refresh(user_id, mfa=True))
    assert with_mfa.mfa
    again = first.rotate_refresh(with_mfa.refresh_token)
    assert again.mfa
    assert again.user.id == user_id
    assert not first.rotate_refresh(first.issue_refresh(user_id)).mfa


# -- API keys ------------------------------------------------------------------------------


def _key_of(store: IdentityStore, role: Role, created_by: str | None) -> str:
    _, plaintext = store.create_key(tenant=TENANT, name="k", role=role, created_by=created_by)
    return digest(plaintext)


def test_a_key_acts_with_at_most_its_makers_current_role(
    stores: tuple[IdentityStore, IdentityStore],
) -> None:
    first, second = stores
    user_id, username = _user(first, Role.OPERATOR)
    key = _key_of(first, Role.OPERATOR, user_id)
    active = second.active_key(key)
    assert active is not None
    assert active.role is Role.OPERATOR
    first.set_role(username, Role.VIEWER)
    active = second.active_key(key)
    assert active is not None
    assert active.role is Role.VIEWER
    # Promoting the maker gives back no more than the key was made with.
    first.set_role(username, Role.ADMIN)
    active = second.active_key(key)
    assert active is not None
    assert active.role is Role.OPERATOR


def test_a_host_made_key_keeps_its_role(stores: tuple[IdentityStore, IdentityStore]) -> None:
    first, second = stores
    active = second.active_key(_key_of(first, Role.ADMIN, None))
    assert active is not None
    assert active.role is Role.ADMIN


def test_a_deleted_users_keys_are_revoked(stores: tuple[IdentityStore, IdentityStore]) -> None:
    first, second = stores
    user_id, _ = _user(first, Role.ADMIN)
    made_by_user = _key_of(first, Role.ADMIN, user_id)
    record = next(k for k in first.list_keys(TENANT) if k.key_hash == made_by_user)
    made_by_key = _key_of(first, Role.OPERATOR, record.id)
    assert second.active_key(made_by_key) is not None
    first.delete_user(user_id)
    assert second.active_key(made_by_user) is None
    assert second.active_key(made_by_key) is None
    revoked = {k.key_hash: k.revoked_at for k in first.list_keys(TENANT, created_by=user_id)}
    assert revoked[made_by_user] is not None


def test_a_key_made_by_a_key_ends_with_it(stores: tuple[IdentityStore, IdentityStore]) -> None:
    first, second = stores
    maker_hash = _key_of(first, Role.ADMIN, None)
    maker = next(k for k in first.list_keys(TENANT) if k.key_hash == maker_hash)
    child = _key_of(first, Role.OPERATOR, maker.id)
    assert second.active_key(child) is not None
    first.revoke_key(TENANT, maker.id)
    assert second.active_key(child) is None
