"""Claiming slots on real PostgreSQL: of beats racing for a slot one wins, a slot left by a
beat that died is taken over under its idempotency key, and failures are retried or recorded."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.migrate import upgrade
from aia_workers.db.schedules import Schedule
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.scheduling.contracts import SystemSchedule
from aia_workers.scheduling.runner import (
    CannotRunError,
    Launched,
    RetryLaterError,
    ScheduleRunner,
)
from aia_workers.scheduling.store import ScheduleStore, system_id
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    settings = Settings(database_url=postgres_url, data_home=tmp_path_factory.mktemp("claims"))
    upgrade(settings)
    engine = make_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions on a schedules table emptied for each test."""
    made = make_sessionmaker(engine)
    with made.begin() as session:
        session.execute(delete(Schedule))
    return made


@dataclass
class Recorder:
    """A launcher that keeps what it was asked to start, failing as told."""

    fail_with: list[Exception] = field(default_factory=list)
    submitted: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(
        self, *, tenant: str, type_name: str, payload: Mapping[str, Any], idempotency: str
    ) -> Launched:
        with self.lock:
            if self.fail_with:
                raise self.fail_with.pop(0)
            self.submitted.append(
                {"tenant": tenant, "type": type_name, "payload": payload, "key": idempotency}
            )
            return Launched(f"task-{len(self.submitted)}")

    def send(
        self,
        *,
        task: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        queue: str | None,
        task_id: str,
    ) -> Launched:
        with self.lock:
            self.sent.append({"task": task, "args": args, "queue": queue, "id": task_id})
            return Launched(task_id)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _schedule(sessions: sessionmaker[Session], *, due: datetime, interval: int = 60) -> str:
    schedule_id = str(uuid.uuid4())
    with sessions.begin() as session:
        session.add(
            Schedule(
                id=schedule_id,
                tenant_id="t1",
                name=f"every-{schedule_id}",
                task="diagnostics.sleep",
                payload={"seconds": 0},
                cron=None,
                timezone="UTC",
                interval_seconds=interval,
                enabled=True,
                created_by="key:test",
                created_at=T0,
                updated_at=T0,
                next_run_at=due,
            )
        )
    return schedule_id


def _row(sessions: sessionmaker[Session], schedule_id: str) -> Schedule:
    with sessions() as session:
        row = session.get(Schedule, schedule_id)
        assert row is not None
        return row


def _runner(
    sessions: sessionmaker[Session], launcher: Recorder, clock: Clock, **kwargs: Any
) -> ScheduleRunner:
    kwargs.setdefault("lease_seconds", 30)
    kwargs.setdefault("retry_seconds", 5)
    return ScheduleRunner(ScheduleStore(sessions), launcher, clock=clock, **kwargs)


def test_of_beats_racing_for_each_slot_exactly_one_wins(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    beats = 6
    # Each beat its own engine and connections, as separate processes have.
    url = engine.url.render_as_string(hide_password=False)
    engines = [make_engine(Settings(database_url=url)) for _ in range(beats)]
    launcher = Recorder()
    schedule_id = _schedule(sessions, due=T0)
    clock = Clock(T0)
    runners = [_runner(make_sessionmaker(e), launcher, clock) for e in engines]
    slots = 15
    try:
        for n in range(slots):
            clock.now = T0 + timedelta(seconds=60 * n)
            barrier = threading.Barrier(beats)
            won: list[int] = []

            def beat(
                runner: ScheduleRunner,
                barrier: threading.Barrier = barrier,
                won: list[int] = won,
            ) -> None:
                barrier.wait()
                won.append(runner.run_due())

            threads = [threading.Thread(target=beat, args=(r,)) for r in runners]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(won) == [0] * (beats - 1) + [1], f"slot {n}: {won}"
    finally:
        for e in engines:
            e.dispose()
    keys = [s["key"] for s in launcher.submitted if schedule_id in s["key"]]
    assert len(keys) == slots
    assert len(set(keys)) == slots
    row = _row(sessions, schedule_id)
    assert row.last_slot_at == T0 + timedelta(seconds=60 * (slots - 1))
    assert row.next_run_at == T0 + timedelta(seconds=60 * slots)
    assert row.last_task_id is not None
    assert row.pending_slot_at is None


def test_a_beat_that_was_down_fires_once_to_catch_up(sessions: sessionmaker[Session]) -> None:
    launcher = Recorder()
    schedule_id = _schedule(sessions, due=T0)
    clock = Clock(T0 + timedelta(minutes=30, seconds=10))  # 30 slots missed
    runner = _runner(sessions, launcher, clock)
    runner.run_due()
    runner.run_due()
    assert [s["key"] for s in launcher.submitted] == [f"schedule:{schedule_id}:{T0.isoformat()}"]
    assert _row(sessions, schedule_id).next_run_at == T0 + timedelta(minutes=31)


def test_a_slot_whose_beat_died_after_claiming_is_taken_over_under_the_same_key(
    sessions: sessionmaker[Session],
) -> None:
    launcher = Recorder()
    schedule_id = _schedule(sessions, due=T0)
    store = ScheduleStore(sessions)
    (due,) = [d for d in store.due(T0, 100) if d.schedule_id == schedule_id]
    assert store.claim(due, T0, T0 + timedelta(seconds=30))  # ...and the beat dies here
    clock = Clock(T0 + timedelta(seconds=10))
    other = _runner(sessions, launcher, clock)
    assert other.run_due() == 0  # its lease still runs
    clock.now = T0 + timedelta(seconds=31)
    assert other.run_due() == 1
    assert [s["key"] for s in launcher.submitted] == [due.idempotency]
    row = _row(sessions, schedule_id)
    assert (row.last_slot_at, row.pending_slot_at) == (T0, None)


def test_a_passing_failure_is_retried_for_the_same_slot(sessions: sessionmaker[Session]) -> None:
    launcher = Recorder(fail_with=[RetryLaterError("tenant 't1' has 10000 tasks in flight")])
    schedule_id = _schedule(sessions, due=T0)
    clock = Clock(T0)
    runner = _runner(sessions, launcher, clock, retry_seconds=5)
    runner.run_due()
    row = _row(sessions, schedule_id)
    assert row.pending_slot_at == T0
    assert "in flight" in (row.last_error or "")
    clock.now = T0 + timedelta(seconds=4)
    runner.run_due()
    assert launcher.submitted == []
    clock.now = T0 + timedelta(seconds=5)
    runner.run_due()
    assert [s["key"] for s in launcher.submitted] == [f"schedule:{schedule_id}:{T0.isoformat()}"]
    row = _row(sessions, schedule_id)
    assert (row.pending_slot_at, row.last_error, row.last_task_id) == (None, None, "task-1")


def test_a_schedule_that_cannot_run_records_why_and_moves_on(
    sessions: sessionmaker[Session],
) -> None:
    launcher = Recorder(fail_with=[CannotRunError("unknown task type 'gone.away'")])
    schedule_id = _schedule(sessions, due=T0)
    runner = _runner(sessions, launcher, Clock(T0))
    runner.run_due()
    row = _row(sessions, schedule_id)
    assert row.pending_slot_at is None
    assert row.last_task_id is None
    assert row.last_error == "unknown task type 'gone.away'"
    assert row.next_run_at == T0 + timedelta(seconds=60)


def test_a_disabled_or_deleted_schedule_does_not_fire(sessions: sessionmaker[Session]) -> None:
    launcher = Recorder()
    disabled = _schedule(sessions, due=T0)
    deleted = _schedule(sessions, due=T0)
    with sessions.begin() as session:
        row = session.get(Schedule, disabled)
        assert row is not None
        row.enabled = False
        session.delete(session.get(Schedule, deleted))
    _runner(sessions, launcher, Clock(T0)).run_due()
    assert not [s for s in launcher.submitted if disabled in s["key"] or deleted in s["key"]]


def test_system_schedules_are_upserted_and_sent_as_plain_tasks(
    sessions: sessionmaker[Session],
) -> None:
    store = ScheduleStore(sessions)
    ping = SystemSchedule(name="ping", task="aia.ping", queue="q", interval_seconds=60)
    # Two beats starting at once add the row once.
    threads = [threading.Thread(target=store.sync_system, args=([ping], T0)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sessions() as session:
        rows = session.scalars(select(Schedule).where(Schedule.tenant_id.is_(None))).all()
    assert [(r.id, r.next_run_at) for r in rows] == [(system_id("ping"), T0 + timedelta(minutes=1))]

    launcher = Recorder()
    runner = _runner(sessions, launcher, Clock(T0 + timedelta(minutes=1)))
    runner.run_due()
    sent = [s for s in launcher.sent if s["task"] == "aia.ping"]
    assert len(sent) == 1
    assert sent[0]["queue"] == "q"
    assert _row(sessions, system_id("ping")).last_task_id == sent[0]["id"]

    # A changed cadence starts over from now; an entry no longer declared goes.
    hourly = SystemSchedule(name="ping", task="aia.ping", cron="0 * * * *")
    store.sync_system([hourly], T0 + timedelta(minutes=2))
    assert _row(sessions, system_id("ping")).next_run_at == T0 + timedelta(hours=1)
    store.sync_system([], T0)
    with sessions() as session:
        assert session.get(Schedule, system_id("ping")) is None
