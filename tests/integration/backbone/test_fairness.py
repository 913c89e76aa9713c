"""Fair shares in the transition script: slots per (queue, tenant), taken, given back, lapsed."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from aia_workers.backbone.broker import celery_message
from aia_workers.backbone.events import PoisonPolicy, TransitionOutcome, transition_args
from aia_workers.backbone.fairness import FairShare
from aia_workers.backbone.keys import events_key, pending_key, slots_key, task_key, waiting_key
from aia_workers.backbone.publisher import EventPublisher
from aia_workers.backbone.rescue import Rescuer
from aia_workers.backbone.scripts import DEFER_LUA, TRANSITION_LUA
from aia_workers.backbone.slots import SlotKeeper
from aia_workers.backbone.states import Event
from tests.support import TEST_LIMITS, record_submit

pytestmark = pytest.mark.integration

TENANT = "t1"  # record_submit's
START = (TENANT, "diagnostics.sleep", "default")  # what AiaTask passes with a start
SLOTS = slots_key("default", TENANT)
WAITING = waiting_key("default", TENANT)
FAIR = FairShare(default_cap=2, lease_seconds=30, defer_seconds=1)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def pub(redis_url: str) -> Iterator[EventPublisher]:
    publisher = EventPublisher(
        redis.Redis.from_url(redis_url), TEST_LIMITS, poison=PoisonPolicy(3), fair=FAIR
    )
    yield publisher
    publisher.client.close()


def _queued(client: redis.Redis) -> str:
    """A task queued as the API queues it on Redis: record, message, pending index."""
    task_id = str(uuid.uuid4())
    message = celery_message(
        task_id=task_id, name="diagnostics.sleep", kwargs={"payload": {}}, queue="default"
    )
    assert record_submit(client, task_id, broker_message=message)[0] == "created"
    return task_id


def _start(pub: EventPublisher, task_id: str) -> TransitionOutcome:
    return pub.transition(task_id, Event.STARTED, fallback=START)


def _events(client: redis.Redis, task_id: str) -> list[str]:
    return [json.loads(f["e"])["event"] for _, f in client.xrange(events_key(task_id))]


def _run_at(client: redis.Redis, task_id: str, now: float) -> TransitionOutcome:
    """A start as if made at ``now``: how lapsed slots look without waiting for them."""
    keys, args = transition_args(
        task_id=task_id,
        event=Event.STARTED,
        now=now,
        limits=TEST_LIMITS,
        fallback=START,
        fair=FAIR,
    )
    return TransitionOutcome.from_reply(client.register_script(TRANSITION_LUA)(keys, args))


def test_a_start_over_the_cap_changes_nothing_and_is_deferred(
    client: redis.Redis, pub: EventPublisher
) -> None:
    first, second, third = (_queued(client) for _ in range(3))
    assert _start(pub, first).outcome == "ok"
    assert _start(pub, second).outcome == "ok"
    assert set(client.zrange(SLOTS, 0, -1)) == {first, second}
    before = client.hgetall(task_key(third))

    deferred = _start(pub, third)

    assert (deferred.outcome, deferred.status) == ("deferred", "queued")
    assert (deferred.running, deferred.waiting, deferred.direct) == (2, 1, True)
    after = client.hgetall(task_key(third))
    # Still queued, no event, no attempt; still in the pending index with its message.
    assert after["status"] == "queued"
    assert (after["seq"], after["attempts"]) == (before["seq"], before["attempts"]) == ("1", "0")
    assert after["message"] == before["message"]
    assert _events(client, third) == ["queued"]
    assert client.zscore(pending_key("default"), third) is not None
    assert after["deferrals"] == "1"
    assert client.zrange(WAITING, 0, -1) == [third]
    # Another tenant's slots are its own.
    other = str(uuid.uuid4())
    assert pub.transition(other, Event.STARTED, fallback=("t2", "x.y", "default")).outcome == "ok"


def test_an_outcome_gives_the_slot_back(client: redis.Redis, pub: EventPublisher) -> None:
    first, second, third = (_queued(client) for _ in range(3))
    _start(pub, first)
    _start(pub, second)
    assert _start(pub, third).outcome == "deferred"

    pub.transition(first, Event.SUCCEEDED, data={"result": 1})
    assert "slot" not in client.hgetall(task_key(first))
    started = _start(pub, third)
    assert (started.outcome, started.status) == ("ok", "running")
    assert set(client.zrange(SLOTS, 0, -1)) == {second, third}
    # No longer waiting, and its events read as if it had never been put back.
    assert client.zcard(WAITING) == 0
    assert _events(client, third) == ["queued", "started"]
    assert client.hget(task_key(third), "attempts") == "1"


@pytest.mark.parametrize("end", [Event.FAILED, Event.CANCELLED, Event.RETRYING])
def test_failure_cancel_and_retry_give_the_slot_back(
    client: redis.Redis, pub: EventPublisher, end: Event
) -> None:
    first, second, third = (_queued(client) for _ in range(3))
    _start(pub, first)
    _start(pub, second)
    # The API cancels with no fair share of its own: the record names the slot.
    pub_without = EventPublisher(pub.client, TEST_LIMITS)
    pub_without.transition(first, end, data={"reason": "test"})
    assert client.zrange(SLOTS, 0, -1) == [second]
    assert _start(pub, third).outcome == "ok"


def test_a_retried_task_asks_for_a_slot_again_and_may_wait_as_retrying(
    client: redis.Redis, pub: EventPublisher
) -> None:
    first, second, third = (_queued(client) for _ in range(3))
    _start(pub, first)
    pub.transition(first, Event.RETRYING, data={"retry": 1})
    _start(pub, second)
    _start(pub, third)
    deferred = _start(pub, first)
    assert (deferred.outcome, deferred.status, deferred.direct) == ("deferred", "retrying", False)
    assert client.hget(task_key(first), "status") == "retrying"


def test_a_cancelled_waiting_task_leaves_the_waiting_set(
    client: redis.Redis, pub: EventPublisher
) -> None:
    first, second, third = (_queued(client) for _ in range(3))
    _start(pub, first)
    _start(pub, second)
    _start(pub, third)
    assert client.zcard(WAITING) == 1
    EventPublisher(pub.client, TEST_LIMITS).transition(third, Event.CANCELLED)
    assert client.zcard(WAITING) == 0
    assert "waiting" not in client.hgetall(task_key(third))


def test_a_slot_not_renewed_lapses_and_a_renewed_one_does_not(
    client: redis.Redis, pub: EventPublisher
) -> None:
    first, second, third = (_queued(client) for _ in range(3))
    _start(pub, first)
    _start(pub, second)
    later = time.time() + FAIR.lease_seconds + 1
    # Renewed (as the keeper of a live process does) to lapse after ``later``.
    keeper = SlotKeeper(pub.client, lease_seconds=FAIR.lease_seconds + 10)
    keeper.hold(first, SLOTS)
    assert keeper.renew() == 1

    # Lease over: the slot of the task whose process stopped renewing is free.
    assert _run_at(client, third, later).outcome == "ok"
    assert set(client.zrange(SLOTS, 0, -1)) == {first, third}


def test_a_renewal_never_takes_back_a_slot_given_back(
    client: redis.Redis, pub: EventPublisher
) -> None:
    task_id = _queued(client)
    _start(pub, task_id)
    keeper = SlotKeeper(pub.client, lease_seconds=FAIR.lease_seconds)
    keeper.hold(task_id, SLOTS)
    pub.transition(task_id, Event.SUCCEEDED, data={"result": 1})
    assert keeper.renew() == 0
    assert client.zcard(SLOTS) == 0


def test_a_task_whose_worker_was_lost_takes_its_slot_back_even_over_the_cap(
    client: redis.Redis, pub: EventPublisher
) -> None:
    first, second, third = (_queued(client) for _ in range(3))
    _start(pub, first)
    _start(pub, second)
    # first's process died; its slot lapsed and third took it.
    later = time.time() + FAIR.lease_seconds + 1
    client.zadd(SLOTS, {second: later + FAIR.lease_seconds})
    assert _run_at(client, third, later).outcome == "ok"
    # Redelivered, first is found running: it runs (a loss), never put back running.
    again = _run_at(client, first, later)
    assert (again.outcome, again.status) == ("ok", "running")
    assert client.hget(task_key(first), "lost") == "1"
    assert set(client.zrange(SLOTS, 0, -1)) == {first, second, third}


def test_a_quarantined_task_gives_its_slot_back(client: redis.Redis, pub: EventPublisher) -> None:
    task_id = _queued(client)
    outcomes = [_start(pub, task_id).outcome for _ in range(4)]
    assert outcomes == ["ok", "ok", "ok", "quarantined"]
    assert client.zcard(SLOTS) == 0


def test_a_cap_of_zero_takes_no_slot(client: redis.Redis, redis_url: str) -> None:
    unbounded = FairShare(default_cap=0, lease_seconds=30, defer_seconds=1, caps={"ml": 1})
    publisher = EventPublisher(redis.Redis.from_url(redis_url), TEST_LIMITS, fair=unbounded)
    ids = [_queued(client) for _ in range(5)]
    assert {_start(publisher, t).outcome for t in ids} == {"ok"}
    assert client.zcard(SLOTS) == 0
    publisher.client.close()


def test_waits_grow_with_the_backlog_and_stay_bounded() -> None:
    fair = FairShare(default_cap=4, lease_seconds=30, defer_seconds=2)
    assert 1.5 <= fair.defer_seconds_for(1, 4) <= 2.5
    assert 15 <= fair.defer_seconds_for(40, 4) <= 25
    assert fair.defer_seconds_for(1_000_000, 4) <= 300 * 1.25


def _put_back(client: redis.Redis, task_id: str, due: float) -> tuple[int, str, str]:
    """What ``deferral.put_back`` does for a task the API queued on Redis."""
    tag = str(uuid.uuid4())
    message = celery_message(
        task_id=task_id,
        name="diagnostics.sleep",
        kwargs={"payload": {}},
        queue="default",
        delivery_tag=tag,
    )
    replace = client.register_script(DEFER_LUA)
    keys = [task_key(task_id), "unacked", "unacked_index", pending_key("default")]
    return int(replace(keys, [task_id, message, tag, repr(due)])), message, tag


def _take(client: redis.Redis, tag: str, *, record: bool = True) -> str:
    """A worker's BRPOP and, unless it dies first, its bookkeeping of the message."""
    message = client.rpop("default")
    assert message is not None
    if record:
        client.hset("unacked", tag, json.dumps([json.loads(message), "", "default"]))
        client.zadd("unacked_index", {tag: time.time()})
    return str(message)


def test_a_task_put_back_replaces_its_message_in_one_step(
    client: redis.Redis, pub: EventPublisher
) -> None:
    first, second, third = (_queued(client) for _ in range(3))
    for task_id in (first, second, third):
        _take(client, task_id)
    _start(pub, first)
    _start(pub, second)
    assert _start(pub, third).direct

    due = time.time() + 5
    replaced, message, tag = _put_back(client, third, due)

    assert replaced == 1
    # The message being deferred is acknowledged; its replacement waits in the list.
    assert not client.hexists("unacked", third)
    assert client.zscore("unacked_index", third) is None
    assert client.lrange("default", 0, -1) == [message]
    record = client.hgetall(task_key(third))
    assert (record["message"], record["tag"], record["status"]) == (message, tag, "queued")
    assert client.zscore(pending_key("default"), third) == pytest.approx(due)
    # Once it starts, the record forgets the message and its tag.
    pub.transition(first, Event.SUCCEEDED, data={"result": 1})
    _take(client, tag)
    assert _start(pub, third).outcome == "ok"
    assert not {"message", "tag"} & set(client.hgetall(task_key(third)))


def test_a_put_back_message_held_is_left_alone_and_one_lost_is_rescued(
    client: redis.Redis, pub: EventPublisher
) -> None:
    first, second, third = (_queued(client) for _ in range(3))
    for task_id in (first, second, third):
        _take(client, task_id)
    _start(pub, first)
    _start(pub, second)
    _start(pub, third)
    rescuer = Rescuer(client, grace_seconds=0, recheck_seconds=0)

    _, message, tag = _put_back(client, third, time.time())
    # Held by a worker (waiting for its ETA) under its own tag: not lost.
    _take(client, tag)
    assert rescuer.sweep(["default"]) == []
    assert client.llen("default") == 0

    # Taken by a worker that died before its bookkeeping: queued again.
    client.hdel("unacked", tag)
    assert rescuer.sweep(["default"]) == [third]
    assert client.lrange("default", 0, -1) == [message]


def test_a_task_cancelled_before_it_is_put_back_is_only_acknowledged(
    client: redis.Redis, pub: EventPublisher
) -> None:
    first, second, third = (_queued(client) for _ in range(3))
    for task_id in (first, second, third):
        _take(client, task_id)
    _start(pub, first)
    _start(pub, second)
    _start(pub, third)
    EventPublisher(pub.client, TEST_LIMITS).transition(third, Event.CANCELLED)

    assert _put_back(client, third, time.time())[0] == 0
    assert not client.hexists("unacked", third)
    assert client.llen("default") == 0
