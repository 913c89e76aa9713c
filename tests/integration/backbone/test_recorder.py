"""The recorder process's loop: stream to database, at least once, with claims."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from aia_workers.backbone.keys import RECORDER_DEAD_LETTERS as DEAD_LETTERS
from aia_workers.backbone.keys import RECORDER_STREAM
from aia_workers.backbone.publisher import EventPublisher
from aia_workers.backbone.recorder import GROUP, Recorder
from aia_workers.backbone.states import Event
from aia_workers.db.migrate import upgrade
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.db.tasks import TaskRecord
from aia_workers.settings import Settings
from tests.support import TEST_LIMITS as LIMITS
from tests.support import record_submit

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine = make_engine(settings)
    yield engine
    engine.dispose()


def _run_task(client: redis.Redis, redis_url: str) -> str:
    task_id = str(uuid.uuid4())
    record_submit(client, task_id, fingerprint="f", payload_json='{"seconds": 0}')
    pub = EventPublisher(redis.Redis.from_url(redis_url), LIMITS)
    pub.transition(task_id, Event.STARTED)
    pub.transition(task_id, Event.SUCCEEDED, data={"result": {"n": 1}}, fields={"result": "1"})
    return task_id


def _statuses(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        return {r.id: r.status for r in session.scalars(select(TaskRecord))}


def test_recorder_writes_each_task_once_and_acknowledges(redis_url: str, engine: Engine) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    ids = [_run_task(client, redis_url) for _ in range(5)]
    recorder = Recorder(client, make_sessionmaker(engine), batch=4, consumer="r1")
    recorder._ensure_group()
    while recorder.step(block_ms=100):
        pass
    assert _statuses(engine) == dict.fromkeys(ids, "succeeded")
    assert recorder.recorded == 15
    assert client.xpending(RECORDER_STREAM, GROUP)["pending"] == 0


def test_entries_of_a_dead_recorder_are_claimed(redis_url: str, engine: Engine) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    task_id = _run_task(client, redis_url)
    client.xgroup_create(RECORDER_STREAM, GROUP, id="0")
    # A recorder that read the entries and died before writing them.
    client.xreadgroup(GROUP, "dead", {RECORDER_STREAM: ">"}, count=100)
    assert client.xpending(RECORDER_STREAM, GROUP)["pending"] == 3
    survivor = Recorder(client, make_sessionmaker(engine), consumer="alive", claim_idle_ms=0)
    assert survivor.step(block_ms=10) == 0  # nothing new to read
    assert survivor.claim_abandoned() == 3
    assert _statuses(engine) == {task_id: "succeeded"}
    assert client.xpending(RECORDER_STREAM, GROUP)["pending"] == 0


def test_an_entry_it_cannot_write_is_parked_not_retried_forever(
    redis_url: str, engine: Engine
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    good = _run_task(client, redis_url)
    client.xadd(RECORDER_STREAM, {"task": "broken", "tenant": "t1", "e": "{not json"})
    later = _run_task(client, redis_url)
    recorder = Recorder(client, make_sessionmaker(engine), consumer="r1")
    recorder._ensure_group()
    while recorder.step(block_ms=100):
        pass
    assert _statuses(engine) == {good: "succeeded", later: "succeeded"}
    assert client.xpending(RECORDER_STREAM, GROUP)["pending"] == 0
    parked = client.xrange(DEAD_LETTERS)
    assert len(parked) == 1
    assert parked[0][1]["task"] == "broken"
    assert "JSONDecodeError" in parked[0][1]["error"]
