"""The Lua scripts that keep each task's live record, sequence and streams."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from aia_workers.backbone.keys import RECORDER_STREAM, events_key, task_key
from aia_workers.backbone.publisher import EventPublisher
from aia_workers.backbone.states import Event
from tests.support import TEST_LIMITS as LIMITS
from tests.support import record_submit

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def pub(redis_url: str) -> Iterator[EventPublisher]:
    publisher = EventPublisher(redis.Redis.from_url(redis_url), LIMITS)
    yield publisher
    publisher.client.close()


def _submit(
    client: redis.Redis,
    task_id: str,
    *,
    idem: str | None = None,
    fingerprint: str = "f1",
    broker: str = "",
) -> list[str]:
    return record_submit(
        client, task_id, idempotency_key=idem, fingerprint=fingerprint, broker_message=broker
    )


def _events(client: redis.Redis, task_id: str) -> list[dict]:
    return [json.loads(f["e"]) for _, f in client.xrange(events_key(task_id))]


def test_submit_records_and_enqueues_atomically(client: redis.Redis) -> None:
    task_id = str(uuid.uuid4())
    assert _submit(client, task_id, broker='{"m":1}') == ["created", task_id]
    record = client.hgetall(task_key(task_id))
    assert record["status"] == "queued"
    assert record["seq"] == "1"
    assert record["tenant"] == "t1"
    assert client.lrange("default", 0, -1) == ['{"m":1}']
    # Nobody can follow a task before its id exists: the queued event waits in
    # the replay stream rather than being published.
    assert _events(client, task_id)[0]["event"] == "queued"
    assert _events(client, task_id)[0]["seq"] == 1
    entry = client.xrange(RECORDER_STREAM)[-1][1]
    assert entry["task"] == task_id
    assert entry["payload"] == '{"seconds":1}'
    assert client.ttl(task_key(task_id)) > 500


def test_idempotency_replays_or_conflicts(client: redis.Redis) -> None:
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    assert _submit(client, first, idem="aia:idem:t1:k")[0] == "created"
    assert _submit(client, second, idem="aia:idem:t1:k") == ["replay", first]
    assert _submit(client, third, idem="aia:idem:t1:k", fingerprint="other") == ["conflict", first]
    assert not client.exists(task_key(second))


def test_transitions_number_events_and_terminal_states_are_final(
    client: redis.Redis, pub: EventPublisher
) -> None:
    task_id = str(uuid.uuid4())
    _submit(client, task_id)
    assert pub.transition(task_id, Event.PROGRESS).outcome == "ignored"  # not running yet
    started = pub.transition(task_id, Event.STARTED)
    assert (started.outcome, started.seq, started.status) == ("ok", 2, "running")
    assert pub.transition(task_id, Event.PROGRESS, data={"current": 1}).seq == 3
    done = pub.transition(task_id, Event.SUCCEEDED, data={"result": 7}, fields={"result": "7"})
    assert done.seq == 4
    late = pub.transition(task_id, Event.FAILED, data={"error": "late"})
    assert (late.outcome, late.status) == ("terminal", "succeeded")
    assert pub.transition(task_id, Event.CANCELLED).outcome == "terminal"
    events = _events(client, task_id)
    assert [e["event"] for e in events] == ["queued", "started", "progress", "succeeded"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [i for i, _ in client.xrange(events_key(task_id))] == ["0-1", "0-2", "0-3", "0-4"]
    record = client.hgetall(task_key(task_id))
    assert record["status"] == "succeeded"
    assert record["result"] == "7"
    assert record["attempts"] == "1"
    assert "finished_at" in record


def test_a_redelivered_task_counts_attempts(client: redis.Redis, pub: EventPublisher) -> None:
    task_id = str(uuid.uuid4())
    _submit(client, task_id)
    pub.transition(task_id, Event.STARTED)
    pub.transition(task_id, Event.STARTED)
    assert client.hget(task_key(task_id), "attempts") == "2"
    assert [e["data"] for e in _events(client, task_id)[1:]] == [{"attempt": 1}, {"attempt": 2}]


def test_start_of_unknown_task_creates_its_record(client: redis.Redis, pub: EventPublisher) -> None:
    task_id = str(uuid.uuid4())
    assert pub.transition(task_id, Event.PROGRESS).outcome == "missing"
    outcome = pub.transition(task_id, Event.STARTED, fallback=("default", "x.y", "default"))
    assert outcome.outcome == "ok"
    record = client.hgetall(task_key(task_id))
    assert (record["tenant"], record["type"], record["status"]) == ("default", "x.y", "running")


def test_progress_is_sent_ahead_of_the_next_transition(client: redis.Redis, redis_url: str) -> None:
    task_id = str(uuid.uuid4())
    _submit(client, task_id)
    # A linger long enough that only the outcome can carry the progress out.
    slow = EventPublisher(redis.Redis.from_url(redis_url), LIMITS, progress_linger_seconds=30)
    slow.transition(task_id, Event.STARTED)
    for i in (1, 2, 3):
        slow.progress(task_id, {"current": i, "total": 3}, {})
    assert [e["event"] for e in _events(client, task_id)] == ["queued", "started"]
    done = slow.transition(task_id, Event.SUCCEEDED, data={"result": 1})
    assert done.seq == 6
    events = _events(client, task_id)
    assert [e["event"] for e in events] == [
        "queued",
        "started",
        "progress",
        "progress",
        "progress",
        "succeeded",
    ]
    assert [e["data"].get("current") for e in events[2:5]] == [1, 2, 3]
    slow.client.close()


def test_progress_goes_out_on_its_own_within_the_linger(
    client: redis.Redis, redis_url: str
) -> None:
    task_id = str(uuid.uuid4())
    _submit(client, task_id)
    quick = EventPublisher(redis.Redis.from_url(redis_url), LIMITS, progress_linger_seconds=0.01)
    quick.transition(task_id, Event.STARTED)
    quick.progress(task_id, {"current": 1, "total": 2}, {"progress": '{"current":1}'})
    deadline = time.monotonic() + 5
    while len(_events(client, task_id)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _events(client, task_id)[-1]["event"] == "progress"
    assert client.hget(task_key(task_id), "progress") == '{"current":1}'
    quick.client.close()


def test_a_flushed_script_cache_is_reloaded_by_the_publisher(
    client: redis.Redis, pub: EventPublisher
) -> None:
    task_id = str(uuid.uuid4())
    _submit(client, task_id)
    client.script_flush()
    assert pub.transition(task_id, Event.STARTED).seq == 2
