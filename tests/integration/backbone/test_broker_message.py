"""The API's hand-built Celery message must be the one kombu's Redis transport writes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import redis
from celery import Celery
from kombu.transport.redis import Channel

from aia_workers.backbone.broker import broker_priority, celery_message, redis_queue_key

pytestmark = pytest.mark.integration


def _only_message(client: redis.Redis) -> tuple[str, dict]:
    lists = [k for k in client.keys("*") if client.type(k) == b"list"]
    assert len(lists) == 1, lists
    return lists[0].decode(), json.loads(client.lrange(lists[0], 0, -1)[0])


@pytest.mark.parametrize("priority", [None, 0, 2, 5, 9])
def test_message_matches_what_celery_sends(redis_url: str, priority: int | None) -> None:
    client = redis.Redis.from_url(redis_url)
    app = Celery("probe", broker=redis_url)
    app.conf.update(task_serializer="json", accept_content=["json"])
    eta = datetime.now(UTC) + timedelta(seconds=30)
    kwargs = {"payload": {"seconds": 1, "steps": 2}, "tenant": "t1"}
    prio = broker_priority(priority, redis=True)
    app.send_task(
        "diagnostics.sleep",
        kwargs=kwargs,
        queue="default",
        task_id="tid-1",
        eta=eta,
        priority=prio,
    )
    celery_key, theirs = _only_message(client)
    client.flushdb()

    ours = json.loads(
        celery_message(
            task_id="tid-1",
            name="diagnostics.sleep",
            kwargs=kwargs,
            queue="default",
            eta=eta,
            broker_prio=prio,
        )
    )
    assert redis_queue_key("default", prio) == celery_key
    assert set(ours) == set(theirs)
    assert set(ours["headers"]) == set(theirs["headers"])
    for header in (
        "task",
        "id",
        "eta",
        "retries",
        "timelimit",
        "root_id",
        "parent_id",
        "lang",
        "shadow",
        "group",
        "expires",
        "ignore_result",
    ):
        assert ours["headers"][header] == theirs["headers"][header], header
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(
        base64.b64decode(theirs["body"])
    )
    for prop in ("correlation_id", "delivery_mode", "delivery_info", "priority", "body_encoding"):
        assert ours["properties"][prop] == theirs["properties"][prop], prop
    assert ours["content-type"] == theirs["content-type"]


def test_priority_buckets_follow_kombu() -> None:
    steps = Channel.priority_steps
    for prio in range(10):
        bucket = steps[max(i for i, s in enumerate(steps) if s <= prio)]
        expected = "q" if bucket == 0 else f"q{Channel.sep}{bucket}"
        assert redis_queue_key("q", prio) == expected


def test_higher_aia_priority_is_served_first_on_each_broker() -> None:
    # kombu's Redis transport pops lower numbers first; RabbitMQ higher ones.
    assert broker_priority(9, redis=True) < broker_priority(0, redis=True)
    assert broker_priority(9, redis=False) > broker_priority(0, redis=False)
    assert broker_priority(None, redis=True) is None


def test_task_sent_event_matches_what_celery_publishes(redis_url: str) -> None:
    from aia_workers.backbone.broker import sent_event, sent_event_channel

    client = redis.Redis.from_url(redis_url)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    pubsub = client.pubsub()
    pubsub.psubscribe(f"/{db}.celeryev/*")
    assert pubsub.get_message(timeout=2)["type"] == "psubscribe"
    app = Celery("probe", broker=redis_url)
    app.conf.update(task_serializer="json", accept_content=["json"], task_send_sent_event=True)
    kwargs = {"payload": {"seconds": 1}, "tenant": "t1"}
    app.send_task("diagnostics.sleep", kwargs=kwargs, queue="default", task_id="tid-2")
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message is not None
    assert message["channel"].decode() == sent_event_channel(db)
    theirs = json.loads(message["data"])
    ours = json.loads(
        sent_event(
            task_id="tid-2",
            name="diagnostics.sleep",
            kwargs=kwargs,
            queue="default",
            eta=None,
            timestamp=1.0,
        )
    )
    assert set(ours) == set(theirs)
    assert ours["properties"]["delivery_info"] == theirs["properties"]["delivery_info"]
    their_event = json.loads(base64.b64decode(theirs["body"]))
    our_event = json.loads(base64.b64decode(ours["body"]))
    assert set(our_event) == set(their_event)
    for key in ("uuid", "root_id", "name", "queue", "routing_key", "type", "retries", "eta"):
        assert our_event[key] == their_event[key], key
