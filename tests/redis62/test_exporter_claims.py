"""The metrics exporter takes over a dead exporter's entries on Redis 6.2, trimmed ones too."""

from __future__ import annotations

import uuid

import pytest
import redis
from prometheus_client import CollectorRegistry

from aia_workers.backbone.keys import RECORDER_STREAM
from aia_workers.telemetry.exporter import GROUP, EventCounter
from aia_workers.telemetry.task_metrics import TaskMetrics
from tests.support import record_submit

pytestmark = pytest.mark.integration


def test_a_dead_exporters_entries_are_counted_once_and_acknowledged(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        client.xgroup_create(RECORDER_STREAM, GROUP, id="0", mkstream=True)
        for _ in range(3):
            record_submit(client, str(uuid.uuid4()))
        # An exporter that read the entries and died; then the stream was trimmed past one.
        client.xreadgroup(GROUP, "dead", {RECORDER_STREAM: ">"}, count=100)
        oldest = client.xrange(RECORDER_STREAM, count=1)[0][0]
        client.xdel(RECORDER_STREAM, oldest)
        survivor = EventCounter(
            client, TaskMetrics(CollectorRegistry()), consumer="alive", claim_idle_ms=0
        )
        assert survivor.claim_abandoned() == 2
        assert survivor.counted == 2
        assert client.xpending(RECORDER_STREAM, GROUP)["pending"] == 0
        # Claimed once: a second pass finds nothing left.
        assert survivor.claim_abandoned() == 0
