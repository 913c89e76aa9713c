"""What the rerun event tests leave out: live publishing and the in-flight count, on 6.2."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from aia_workers.agents.slot_scripts import ADMIT_LUA, RELEASE_LUA, RETIRE_LUA, SETTLE_LUA
from aia_workers.backbone.keys import RECORDER_STREAM, channel, inflight_key
from aia_workers.backbone.publisher import EventPublisher
from aia_workers.backbone.scripts import (
    DEFER_LUA,
    RENEW_SLOT_LUA,
    RESCUE_LUA,
    SUBMIT_LUA,
    TRANSITION_LUA,
)
from aia_workers.backbone.states import Event
from tests.support import TEST_LIMITS, record_submit, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        yield client


def test_a_task_is_published_live_and_frees_its_inflight_slot(
    client: redis.Redis, redis_url: str
) -> None:
    task_id = str(uuid.uuid4())
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(channel(task_id))
    assert record_submit(client, task_id) == ["created", task_id]
    assert client.get(inflight_key("t1")) == "1"
    publisher = EventPublisher(redis.Redis.from_url(redis_url), TEST_LIMITS)
    publisher.transition(task_id, Event.STARTED)
    publisher.transition(task_id, Event.SUCCEEDED, data={"result": 1}, fields={"result": "1"})
    publisher.client.close()

    received: list[dict[str, Any]] = []

    def both_arrived() -> bool:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            received.append(json.loads(message["data"]))
        return len(received) == 2

    wait_for(both_arrived, 5, 0, "the started and succeeded events")
    pubsub.close()
    assert [(e["event"], e["seq"]) for e in received] == [("started", 2), ("succeeded", 3)]
    assert client.get(inflight_key("t1")) == "0"
    entries: list[tuple[str, dict[str, str]]] = client.xrange(RECORDER_STREAM)  # type: ignore[assignment]
    recorded = [f["e"] for _, f in entries if f["task"] == task_id]
    assert [json.loads(e)["event"] for e in recorded] == ["queued", "started", "succeeded"]


def test_every_backbone_script_compiles(client: redis.Redis) -> None:
    # SCRIPT LOAD compiles without running: a command or syntax this server
    # lacks is an error here rather than in the middle of a task's life.
    backbone = (SUBMIT_LUA, TRANSITION_LUA, RESCUE_LUA, DEFER_LUA, RENEW_SLOT_LUA)
    agents = (ADMIT_LUA, RELEASE_LUA, SETTLE_LUA, RETIRE_LUA)
    for script in (*backbone, *agents):
        assert len(client.script_load(script)) == 40
