"""TOTP and webhook secrets at rest on SQLite and PostgreSQL: no plaintext, useless without the
key, rotated under a new key while the old one still reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from aia_api.identity.roles import Role
from aia_api.identity.store import IdentityStore
from aia_workers.db.migrate import upgrade
from aia_workers.db.sealed import reseal_all
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.db.webhooks import WebhookEndpoint
from aia_workers.secretbox import SecretBox, SecretBoxError, new_key
from aia_workers.settings import Settings
from aia_workers.webhooks.signing import new_secret
from aia_workers.webhooks.store import WebhookRepository, signing_secrets, store_secret

pytestmark = pytest.mark.integration

TENANT = "t1"


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine = make_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


def _copy(engine: Engine, sql: str, **params: Any) -> list[Any]:
    """What a dump holds: the rows as stored, read with a connection of its own, no AIA code."""
    dump = create_engine(engine.url)
    try:
        with dump.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        dump.dispose()


def _user(sessions: sessionmaker[Session], box: SecretBox | None) -> tuple[IdentityStore, str]:
    store = IdentityStore(sessions, refresh_ttl_seconds=3600, box=box)
    store.ensure_tenant(TENANT)
    user = store.create_user(
        tenant=TENANT,
        username=f"u-{uuid.uuid4().hex[:8]}",
        password="correct horse battery staple",
        role=Role.OPERATOR,
    )
    return store, user.id


def _endpoint(sessions: sessionmaker[Session], box: SecretBox, secret: str) -> str:
    now = datetime.now(UTC)
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()),
        tenant_id=TENANT,
        url="https://hooks.example.com/aia",
        description=None,
        events=["task.succeeded"],
        enabled=True,
        created_by="tests",
        created_at=now,
        updated_at=now,
    )
    store_secret(endpoint, box, secret)
    with sessions.begin() as session:
        session.add(endpoint)
    return endpoint.id


def test_a_database_copy_without_the_key_neither_passes_mfa_nor_signs(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    box = SecretBox([new_key()])
    store, user_id = _user(sessions, box)
    totp_secret, uri = store.start_mfa(user_id)
    assert totp_secret in uri
    codes = store.confirm_mfa(user_id, pyotp.TOTP(totp_secret).now())
    assert codes
    # The confirming code is spent: the next step's logs in.
    assert store.check_second_factor(user_id, pyotp.TOTP(totp_secret).at(time.time() + 30))
    webhook_secret = new_secret()
    endpoint_id = _endpoint(sessions, box, webhook_secret)

    [(stored_totp,)] = _copy(engine, "SELECT mfa_secret FROM users WHERE id = :i", i=user_id)
    [(stored_hook, _)] = _copy(
        engine, "SELECT secret, previous_secret FROM webhook_endpoints WHERE id = :i", i=endpoint_id
    )
    for stored, secret in ((stored_totp, totp_secret), (stored_hook, webhook_secret)):
        assert secret not in stored
        assert SecretBox.is_sealed(stored)
        # The code without the key, or with any other key, gets nothing out of it.
        for keyless in (SecretBox([]), SecretBox([new_key()])):
            with pytest.raises(SecretBoxError):
                keyless.open(stored)
        assert box.open(stored) == secret

    with sessions() as session:
        endpoint = WebhookRepository(session, TENANT).endpoint(endpoint_id)
        assert signing_secrets(endpoint, box, datetime.now(UTC)) == [webhook_secret]


def test_a_rotated_endpoint_keeps_no_plaintext_of_either_secret(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    box = SecretBox([new_key()])
    first = new_secret()
    endpoint_id = _endpoint(sessions, box, first)
    second = new_secret()
    now = datetime.now(UTC)
    with sessions.begin() as session:
        endpoint = WebhookRepository(session, TENANT).endpoint(endpoint_id)
        store_secret(endpoint, box, second, keep_previous_until=now + timedelta(hours=1))
    [(current, previous)] = _copy(
        engine, "SELECT secret, previous_secret FROM webhook_endpoints WHERE id = :i", i=endpoint_id
    )
    assert first not in previous
    assert second not in current
    with sessions() as session:
        endpoint = WebhookRepository(session, TENANT).endpoint(endpoint_id)
        assert signing_secrets(endpoint, box, now) == [second, first]
        # Past the grace, only the new one signs.
        assert signing_secrets(endpoint, box, now + timedelta(hours=2)) == [second]


def test_rotation_reads_old_rows_and_reseals_every_one_including_plaintext(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    old, new = new_key(), new_key()
    under_old = SecretBox([old])
    store, sealed_user = _user(sessions, under_old)
    totp_secret, _ = store.start_mfa(sealed_user)
    hook_secret = new_secret()
    sealed_endpoint = _endpoint(sessions, under_old, hook_secret)
    # Rows an existing deployment wrote before secrets were encrypted.
    _, legacy_user = _user(sessions, under_old)
    legacy_totp = pyotp.random_base32()
    legacy_hook, legacy_previous = new_secret(), new_secret()
    legacy_endpoint = _endpoint(sessions, under_old, legacy_hook)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE users SET mfa_secret = :s WHERE id = :i"),
            {"s": legacy_totp, "i": legacy_user},
        )
        conn.execute(
            text("UPDATE webhook_endpoints SET secret = :s, previous_secret = :p WHERE id = :i"),
            {"s": legacy_hook, "p": legacy_previous, "i": legacy_endpoint},
        )

    # During the rotation: the new key first, the old one still there; old rows read.
    during = SecretBox([new, old])
    rotating = IdentityStore(sessions, refresh_ttl_seconds=3600, box=during)
    assert rotating.confirm_mfa(sealed_user, pyotp.TOTP(totp_secret).now())
    with sessions() as session:
        repository = WebhookRepository(session, TENANT)
        assert signing_secrets(repository.endpoint(sealed_endpoint), during, datetime.now(UTC)) == [
            hook_secret
        ]
        assert signing_secrets(repository.endpoint(legacy_endpoint), during, datetime.now(UTC)) == [
            legacy_hook
        ]

    report = reseal_all(sessions, during, batch=1)
    assert report.resealed == {
        "users.mfa_secret": 2,
        "webhook_endpoints.secret": 2,
        "webhook_endpoints.previous_secret": 1,
    }
    assert report.unreadable == []

    rows = _copy(engine, "SELECT id, mfa_secret FROM users WHERE mfa_secret IS NOT NULL")
    rows += _copy(engine, "SELECT id, secret FROM webhook_endpoints")
    rows += _copy(
        engine,
        "SELECT id, previous_secret FROM webhook_endpoints WHERE previous_secret IS NOT NULL",
    )
    plaintexts = {totp_secret, hook_secret, legacy_totp, legacy_hook, legacy_previous}
    after = SecretBox([new])
    opened = set()
    for _, stored in rows:
        assert not any(p in stored for p in plaintexts)
        # The old key can go now: the new one alone reads every row.
        opened.add(after.open(stored))
        with pytest.raises(SecretBoxError):
            under_old.open(stored)
    assert opened == plaintexts

    again = reseal_all(sessions, during)
    assert sum(again.resealed.values()) == 0
    assert sum(again.current.values()) == 5


def test_rotation_names_the_rows_no_key_can_read(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    lost = SecretBox([new_key()])
    endpoint_id = _endpoint(sessions, lost, new_secret())
    report = reseal_all(sessions, SecretBox([new_key()]))
    assert report.unreadable == [f"webhook_endpoints.secret:{endpoint_id}"]


def test_the_rotate_command_reseals_and_names_what_it_cannot_read(
    engine: Engine, sessions: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    old, new, lost = new_key(), new_key(), new_key()
    legacy = new_secret()
    legacy_id = _endpoint(sessions, SecretBox([old]), legacy)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE webhook_endpoints SET secret = :s WHERE id = :i"),
            {"s": legacy, "i": legacy_id},
        )
    under_old = new_secret()
    old_id = _endpoint(sessions, SecretBox([old]), under_old)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIA_")},
        "AIA_DATABASE_URL": database_url,
        "AIA_DATA_HOME": str(tmp_path / "home"),
        "AIA_ENCRYPTION_KEYS": json.dumps([new, old]),
    }
    aia = str(Path(sys.executable).parent / "aia")
    done = subprocess.run(
        [aia, "secrets", "rotate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "webhook_endpoints.secret: 2 re-encrypted, 0 already current" in done.stdout
    by_id = dict(_copy(engine, "SELECT id, secret FROM webhook_endpoints"))
    assert SecretBox([new]).open(by_id[legacy_id]) == legacy
    assert SecretBox([new]).open(by_id[old_id]) == under_old

    unreadable = _endpoint(sessions, SecretBox([lost]), new_secret())
    env["AIA_ENCRYPTION_KEYS"] = json.dumps([new])
    again = subprocess.run(
        [aia, "secrets", "rotate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 1
    assert f"webhook_endpoints.secret:{unreadable}" in again.stderr
    assert "webhook_endpoints.secret: 0 re-encrypted, 2 already current" in again.stdout
