"""A task whose message a dying worker took off Redis is queued again, and only such a task."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from aia_workers.backbone.broker import celery_message
from aia_workers.backbone.keys import pending_key, task_key
from aia_workers.backbone.publisher import EventPublisher
from aia_workers.backbone.rescue import Rescuer
from aia_workers.backbone.states import Event
from tests.support import TEST_LIMITS, record_submit

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def _queued(client: redis.Redis) -> str:
    task_id = str(uuid.uuid4())
    message = celery_message(
        task_id=task_id, name="diagnostics.sleep", kwargs={"payload": {}}, queue="default"
    )
    assert record_submit(client, task_id, broker_message=message)[0] == "created"
    return task_id


def _rescuer(client: redis.Redis) -> Rescuer:
    return Rescuer(client, grace_seconds=0, recheck_seconds=0)


def test_a_message_taken_and_never_recorded_is_queued_again(client: redis.Redis) -> None:
    lost = _queued(client)
    # What a worker killed between BRPOP and its bookkeeping leaves behind.
    assert client.rpop("default") is not None
    assert client.llen("default") == 0

    assert _rescuer(client).sweep(["default"]) == [lost]
    assert client.llen("default") == 1
    # Queued once only, however often the sweep runs.
    assert _rescuer(client).sweep(["default"]) == []
    assert client.llen("default") == 1


def test_tasks_still_queued_held_or_started_are_left_alone(client: redis.Redis) -> None:
    waiting = _queued(client)
    held = _queued(client)
    started = _queued(client)
    # held: taken and recorded by a live worker; started: under way.
    client.lrem("default", 1, client.hget(task_key(held), "message") or "")
    client.hset("unacked", held, "[]")
    client.lrem("default", 1, client.hget(task_key(started), "message") or "")
    publisher = EventPublisher(client, TEST_LIMITS)
    publisher.transition(started, Event.STARTED, fallback=("t1", "diagnostics.sleep", "default"))

    assert _rescuer(client).sweep(["default"]) == []
    assert client.lrange("default", 0, -1) == [client.hget(task_key(waiting), "message")]
    # A start takes the task out of the index (and drops its stored message).
    assert client.zscore(pending_key("default"), started) is None
    assert client.hget(task_key(started), "message") is None


def test_a_message_put_back_at_the_head_is_not_queued_twice(client: redis.Redis) -> None:
    older = _queued(client)
    time.sleep(0.01)
    newer = _queued(client)
    # The older one was taken and then restored behind the newer one (LPUSH),
    # so the list's tail is newer than it: only its exact presence tells.
    message = client.rpop("default")
    assert message is not None
    client.lpush("default", message)
    assert client.lindex("default", -1) == client.hget(task_key(newer), "message")

    assert _rescuer(client).sweep(["default"]) == []
    assert client.llen("default") == 2
    assert {older, newer} <= set(client.zrange(pending_key("default"), 0, -1))
