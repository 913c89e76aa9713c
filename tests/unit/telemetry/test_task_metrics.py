"""Task metrics from task event stream entries, as the scripts write them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from aia_workers.backbone.registry import online_by_queue
from aia_workers.telemetry.task_metrics import TaskMetrics

CREATED = 1_000.0


def _entry(
    event: str,
    status: str,
    at: float,
    *,
    data: dict[str, Any] | None = None,
    started: float | None = None,
    queue: str = "ml",
    kind: str = "ml.train",
) -> dict[str, str]:
    body = {"task_id": "t", "seq": 2, "event": event, "status": status, "time": at}
    return {
        "task": "t",
        "tenant": "default",
        "type": kind,
        "queue": queue,
        "e": orjson.dumps({**body, "data": data or {}}).decode(),
        "created": repr(CREATED),
        "started": "" if started is None else repr(started),
    }


@pytest.fixture
def metrics() -> tuple[TaskMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return TaskMetrics(registry), registry


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_task_retried_once_then_succeeding(
    metrics: tuple[TaskMetrics, CollectorRegistry],
) -> None:
    counter, registry = metrics
    labels = {"queue": "ml", "type": "ml.train"}
    counted = counter.observe(
        [
            {**_entry("queued", "queued", CREATED), "started": "", "created": ""},
            _entry("started", "running", CREATED + 2, data={"attempt": 1}, started=CREATED + 2),
            _entry("progress", "running", CREATED + 3, started=CREATED + 2),
            _entry("retrying", "retrying", CREATED + 4, started=CREATED + 2),
            _entry("started", "running", CREATED + 10, data={"attempt": 2}, started=CREATED + 10),
            _entry("succeeded", "succeeded", CREATED + 17, started=CREATED + 10),
        ]
    )
    assert counted == 6
    assert _value(registry, "aia_worker_task_starts_total", **labels) == 2
    assert _value(registry, "aia_worker_task_retries_total", **labels) == 1
    assert _value(registry, "aia_worker_tasks_total", state="succeeded", **labels) == 1
    assert _value(registry, "aia_worker_tasks_total", state="failed", **labels) == 0
    # The queue wait is the first attempt's: a retry's countdown is not time in the queue.
    assert _value(registry, "aia_worker_task_queue_wait_seconds_count", **labels) == 1
    assert _value(registry, "aia_worker_task_queue_wait_seconds_sum", **labels) == 2
    # The runtime is the last attempt's.
    assert _value(registry, "aia_worker_task_runtime_seconds_count", **labels) == 1
    assert _value(registry, "aia_worker_task_runtime_seconds_sum", **labels) == 7


def test_final_states_by_queue_and_type(metrics: tuple[TaskMetrics, CollectorRegistry]) -> None:
    counter, registry = metrics
    counter.observe(
        [
            _entry("failed", "failed", CREATED + 5, started=CREATED + 1, queue="drift", kind="d"),
            _entry("failed", "failed", CREATED + 5, started=CREATED + 1, queue="drift", kind="d"),
            # Cancelled while queued: never started, so no runtime.
            _entry("cancelled", "cancelled", CREATED + 1, queue="agents", kind="agents.run"),
        ]
    )
    drift = {"queue": "drift", "type": "d"}
    agents = {"queue": "agents", "type": "agents.run"}
    assert _value(registry, "aia_worker_tasks_total", state="failed", **drift) == 2
    assert _value(registry, "aia_worker_tasks_total", state="cancelled", **agents) == 1
    assert _value(registry, "aia_worker_task_runtime_seconds_count", **drift) == 2
    assert _value(registry, "aia_worker_task_runtime_seconds_count", **agents) == 0


def test_entries_that_are_not_task_events_are_skipped(
    metrics: tuple[TaskMetrics, CollectorRegistry],
) -> None:
    counter, registry = metrics
    good = _entry("succeeded", "succeeded", CREATED + 1)
    counted = counter.observe([{}, {**good, "e": "not json"}, {**good, "e": '{"event": 1}'}, good])
    assert counted == 1
    assert (
        _value(registry, "aia_worker_tasks_total", queue="ml", type="ml.train", state="succeeded")
        == 1
    )


def test_a_clock_step_back_never_gives_a_negative_time(
    metrics: tuple[TaskMetrics, CollectorRegistry],
) -> None:
    counter, registry = metrics
    counter.observe([_entry("started", "running", CREATED - 1, data={"attempt": 1})])
    labels = {"queue": "ml", "type": "ml.train"}
    assert _value(registry, "aia_worker_task_queue_wait_seconds_sum", **labels) == 0
    assert _value(registry, "aia_worker_task_queue_wait_seconds_bucket", le="0.001", **labels) == 1


def test_workers_online_by_queue() -> None:
    now = 5_000.0
    entries = {
        "a@h": orjson.dumps({"queues": ["ml", "drift"], "seen": now - 1}).decode(),
        "b@h": orjson.dumps({"queues": ["ml"], "seen": now - 2}).decode(),
        "gone@h": orjson.dumps({"queues": ["ml"], "seen": now - 60}).decode(),
        "bad@h": "{",
    }
    online = online_by_queue(entries, now, ["ml", "drift", "agents"])
    assert online == {"ml": ["a@h", "b@h"], "drift": ["a@h"], "agents": []}
