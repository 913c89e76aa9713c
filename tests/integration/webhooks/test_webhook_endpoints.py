"""Webhook endpoints on SQLite and PostgreSQL: the per-tenant cap holds under concurrent creates."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.migrate import upgrade
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.db.webhooks import WebhookEndpoint
from aia_workers.errors import ConflictError
from aia_workers.settings import Settings
from aia_workers.webhooks.store import EndpointLimitError, WebhookRepository

pytestmark = pytest.mark.integration


@pytest.fixture
def sessions(database_url: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine: Engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


def _new(tenant: str) -> WebhookEndpoint:
    now = datetime.now(UTC)
    return WebhookEndpoint(
        id=str(uuid.uuid4()),
        tenant_id=tenant,
        url="https://example.com/hook",
        events=["task.failed"],
        enabled=True,
        secret="whsec_" + "A" * 44,
        created_at=now,
        updated_at=now,
    )


def _count(sessions: sessionmaker[Session], tenant: str) -> int:
    e = WebhookEndpoint
    with sessions() as session:
        return int(session.scalar(select(func.count()).where(e.tenant_id == tenant)) or 0)


def _add(sessions: sessionmaker[Session], tenant: str, cap: int) -> None:
    with sessions.begin() as session:
        WebhookRepository(session, tenant).add(_new(tenant), max_endpoints=cap)


def test_a_tenant_stops_at_its_cap_and_others_are_not_counted(
    sessions: sessionmaker[Session],
) -> None:
    for _ in range(3):
        _add(sessions, "t1", 3)
    with pytest.raises(EndpointLimitError) as caught:
        _add(sessions, "t1", 3)
    assert caught.value.limit == 3
    assert isinstance(caught.value, ConflictError)
    assert "3 webhook endpoints" in str(caught.value)
    assert "AIA_WEBHOOK_TENANT_MAX_ENDPOINTS" in str(caught.value)
    # The refused one left nothing behind; another tenant has a cap of its own.
    assert _count(sessions, "t1") == 3
    _add(sessions, "t2", 3)
    assert _count(sessions, "t2") == 1


def test_concurrent_creates_never_pass_the_cap(sessions: sessionmaker[Session]) -> None:
    cap, callers = 4, 12
    start = threading.Barrier(callers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def create() -> None:
        start.wait()
        try:
            _add(sessions, "t1", cap)
            outcome = "created"
        except EndpointLimitError:
            outcome = "refused"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=create) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["created"] * cap + ["refused"] * (callers - cap)
    assert _count(sessions, "t1") == cap
