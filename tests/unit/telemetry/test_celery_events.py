"""Task metrics from Celery's own events, for the tasks outside AIA's catalog."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from aia_workers.backbone.app import create_celery_app
from aia_workers.backbone.catalog import CATALOG
from aia_workers.telemetry.celery_events import CeleryEventCounter
from aia_workers.telemetry.task_metrics import TaskMetrics

DELIVER = {"queue": "webhooks", "type": "webhooks.deliver"}


@pytest.fixture
def counted() -> tuple[CeleryEventCounter, CollectorRegistry]:
    registry = CollectorRegistry()
    counter = CeleryEventCounter(
        create_celery_app(), TaskMetrics(registry), lambda name: name not in CATALOG
    )
    return counter, registry


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _event(kind: str, uuid: str, at: float, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "uuid": uuid, "timestamp": at, **fields}


def test_a_delivery_retried_then_delivered(
    counted: tuple[CeleryEventCounter, CollectorRegistry],
) -> None:
    counter, registry = counted
    for event in [
        _event("task-sent", "d1", 100.0, name="webhooks.deliver", queue="webhooks"),
        _event("task-received", "d1", 100.5, name="webhooks.deliver"),
        _event("task-started", "d1", 101.0),
        _event("task-retried", "d1", 101.2),
        _event("task-started", "d1", 104.0),
        _event("task-succeeded", "d1", 104.3, runtime=0.3),
        # Another kind of event, and one of a task never seen: both left alone.
        {"type": "worker-heartbeat", "hostname": "w"},
        _event("task-succeeded", "unknown", 105.0, runtime=9.0),
    ]:
        counter.on_event(event)
    assert _value(registry, "aia_worker_task_starts_total", **DELIVER) == 2
    assert _value(registry, "aia_worker_task_retries_total", **DELIVER) == 1
    assert _value(registry, "aia_worker_tasks_total", state="succeeded", **DELIVER) == 1
    assert _value(registry, "aia_worker_task_queue_wait_seconds_sum", **DELIVER) == 1.0
    assert _value(registry, "aia_worker_task_runtime_seconds_sum", **DELIVER) == pytest.approx(0.3)


def test_catalog_tasks_are_left_to_the_event_stream(
    counted: tuple[CeleryEventCounter, CollectorRegistry],
) -> None:
    counter, registry = counted
    counter.on_event(_event("task-sent", "t1", 1.0, name="diagnostics.sleep", queue="default"))
    counter.on_event(_event("task-started", "t1", 2.0))
    counter.on_event(_event("task-succeeded", "t1", 3.0, runtime=1.0))
    labels = {"queue": "default", "type": "diagnostics.sleep"}
    assert _value(registry, "aia_worker_task_starts_total", **labels) == 0
    assert _value(registry, "aia_worker_tasks_total", state="succeeded", **labels) == 0


def test_a_failure_without_a_runtime_is_timed_from_its_start_and_the_queue_from_routes(
    counted: tuple[CeleryEventCounter, CollectorRegistry],
) -> None:
    counter, registry = counted
    # Seen first at its receipt (the sent event was missed): the queue comes from the routes.
    counter.on_event(_event("task-received", "d2", 10.0, name="webhooks.deliver"))
    counter.on_event(_event("task-started", "d2", 11.0))
    counter.on_event(_event("task-failed", "d2", 13.5))
    assert _value(registry, "aia_worker_tasks_total", state="failed", **DELIVER) == 1
    assert _value(registry, "aia_worker_task_runtime_seconds_sum", **DELIVER) == 2.5
    assert _value(registry, "aia_worker_task_queue_wait_seconds_count", **DELIVER) == 0
