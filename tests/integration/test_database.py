"""Migrations, the recorder's upserts and tenant-scoped reads, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, inspect, select
from sqlalchemy.orm import Session

from aia_workers.backbone.history import InvalidCursorError, TaskRepository
from aia_workers.backbone.history_writer import apply_events
from aia_workers.db.identity import Tenant
from aia_workers.db.migrate import upgrade
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.db.tasks import TaskRecord
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str, tmp_path) -> Iterator[Engine]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine = make_engine(settings)
    yield engine
    engine.dispose()


def _entry(
    task_id: str,
    seq: int,
    event: str,
    status: str,
    t: float,
    *,
    tenant: str = "t1",
    data: dict | None = None,
    payload: str | None = None,
) -> dict:
    entry = {
        "task": task_id,
        "tenant": tenant,
        "type": "diagnostics.sleep",
        "queue": "default",
        "e": json.dumps(
            {
                "task_id": task_id,
                "seq": seq,
                "event": event,
                "status": status,
                "time": t,
                "data": data or {},
            }
        ),
    }
    if payload is not None:
        entry["payload"] = payload
    return entry


def _life(task_id: str, tenant: str = "t1", t0: float = 1_800_000_000.0) -> list[dict]:
    return [
        _entry(task_id, 1, "queued", "queued", t0, tenant=tenant, payload='{"seconds": 1}'),
        _entry(task_id, 2, "started", "running", t0 + 1, tenant=tenant, data={"attempt": 1}),
        _entry(
            task_id,
            3,
            "progress",
            "running",
            t0 + 2,
            tenant=tenant,
            data={"current": 1, "total": 1, "message": None},
        ),
        _entry(
            task_id,
            4,
            "succeeded",
            "succeeded",
            t0 + 3,
            tenant=tenant,
            data={"result": {"ok": True}},
        ),
    ]


def test_migration_creates_the_schema_and_default_tenant(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {"tenants", "tasks", "alembic_version"} <= tables
    with Session(engine) as session:
        assert session.get(Tenant, "default") is not None


def test_recorder_writes_the_final_state(engine: Engine) -> None:
    task_id = str(uuid.uuid4())
    with make_sessionmaker(engine).begin() as session:
        assert apply_events(session, _life(task_id)) == 1
    with Session(engine) as session:
        row = session.get(TaskRecord, task_id)
        assert row is not None
        assert (row.status, row.seq, row.attempts) == ("succeeded", 4, 1)
        assert row.result == {"ok": True}
        assert row.payload == {"seconds": 1}
        assert row.created_at.tzinfo is not None
        assert row.finished_at > row.started_at > row.created_at


def test_recorder_is_idempotent_and_order_safe(engine: Engine) -> None:
    task_id = str(uuid.uuid4())
    life = _life(task_id)
    sessions = make_sessionmaker(engine)
    # Newest first, then the older batch arrives late, then everything again.
    for batch in (life[2:], life[:2], life):
        with sessions.begin() as session:
            apply_events(session, batch)
    with Session(engine) as session:
        row = session.get(TaskRecord, task_id)
        assert (row.status, row.seq) == ("succeeded", 4)
        assert row.payload == {"seconds": 1}  # filled in by the late batch
        assert row.started_at is not None
        assert row.result == {"ok": True}
        count = len(session.scalars(select(TaskRecord).where(TaskRecord.id == task_id)).all())
        assert count == 1


def test_reads_are_scoped_to_the_tenant(engine: Engine) -> None:
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    with make_sessionmaker(engine).begin() as session:
        apply_events(session, _life(mine, "t1") + _life(theirs, "t2"))
    with Session(engine) as session:
        assert TaskRepository(session, "t1").get(mine) is not None
        assert TaskRepository(session, "t1").get(theirs) is None
        listed = [r.id for r in TaskRepository(session, "t1").list().items]
        assert mine in listed
        assert theirs not in listed


def test_cursor_pagination_walks_every_row_once(engine: Engine) -> None:
    ids = [str(uuid.uuid4()) for _ in range(7)]
    entries = []
    for i, task_id in enumerate(ids):
        # Two tasks share a creation time: the id breaks the tie.
        entries += _life(task_id, t0=1_800_000_000.0 + (i // 2))
    with make_sessionmaker(engine).begin() as session:
        apply_events(session, entries)
    seen: list[str] = []
    cursor = None
    with Session(engine) as session:
        repo = TaskRepository(session, "t1")
        while True:
            page = repo.list(limit=3, cursor=cursor, statuses=["succeeded"])
            seen += [r.id for r in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids)
        assert len(seen) == len(set(seen))
        with pytest.raises(InvalidCursorError):
            repo.list(cursor="not-a-cursor")
