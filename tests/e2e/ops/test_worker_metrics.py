"""``aia exporter``: the workers' metrics, counted from the task event stream.

A stack of its own (a Redis DB, SQLite, the API) with one default-queue worker
whose pool replaces its process after every task, as ``--max-tasks-per-child``
does in production: counts must not live in the processes that are replaced.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import _claim_redis_db, _release
from tests.support import Stack, free_port, private_stack, submit, wait_for, wait_status

pytestmark = pytest.mark.e2e

SLEEP = 0.05
DEFAULT = {"queue": "default", "type": "diagnostics.sleep"}


@pytest.fixture(scope="module")
def recycling_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    redis_url = _claim_redis_db()
    stack = private_stack(tmp_path_factory.mktemp("exporter"), redis_url)
    try:
        stack.start_worker(
            "recycling", "default", concurrency=1, extra_args=["--max-tasks-per-child=1"]
        )
        yield stack
    finally:
        stack.stop()
        _release(redis_url)


@pytest.fixture
def exporter(recycling_stack: Stack) -> Iterator[int]:
    """An exporter's port; stopped after the test, as any other would share its counts."""
    port = free_port()
    process = recycling_stack.start_exporter(port)
    yield port
    process.stop()


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(port: int, name: str, **labels: str) -> float:
    return _scrape(port).get((name, frozenset(labels.items())), 0.0)


def _wait_value(port: int, name: str, expected: float, **labels: str) -> None:
    wait_for(
        lambda: _value(port, name, **labels) == expected,
        30,
        what=f"{name}{labels} == {expected} (is {_value(port, name, **labels)})",
    )


def test_tasks_are_counted_by_queue_type_and_state_across_recycled_processes(
    recycling_stack: Stack, exporter: int
) -> None:
    port = exporter
    assert _value(port, "aia_workers_online", queue="default") == 1
    assert _value(port, "aia_workers_online", queue="ml") == 0
    with recycling_stack.client() as api:
        tasks = [submit(api, {"seconds": SLEEP}) for _ in range(2)]
        tasks.append(submit(api, {"seconds": SLEEP, "fail": True}))
        tasks.append(submit(api, {"seconds": SLEEP, "transient_failures": 1}))
        for task in tasks:
            wait_status(api, task["id"], {"succeeded", "failed"})

    _wait_value(port, "aia_worker_tasks_total", 3, state="succeeded", **DEFAULT)
    _wait_value(port, "aia_worker_tasks_total", 1, state="failed", **DEFAULT)
    assert _value(port, "aia_worker_task_retries_total", **DEFAULT) == 1
    assert _value(port, "aia_worker_task_starts_total", **DEFAULT) == 5
    assert _value(port, "aia_worker_task_queue_wait_seconds_count", **DEFAULT) == 4
    assert _value(port, "aia_worker_task_runtime_seconds_count", **DEFAULT) == 4
    # Every run slept SLEEP seconds, so none falls in a bucket below it.
    assert _value(port, "aia_worker_task_runtime_seconds_bucket", le="0.025", **DEFAULT) == 0
    assert _value(port, "aia_exporter_read_ok", source="redis") == 1
    assert _value(port, "aia_exporter_read_ok", source="broker") == 1


def test_tasks_outside_the_catalog_are_counted_from_celerys_events(
    recycling_stack: Stack, exporter: int
) -> None:
    # A webhook delivery is a plain Celery task (the outbox relay sends it): no
    # record on the event stream, so Celery's own events count it.
    recycling_stack.start_worker("hooks", "webhooks", concurrency=2, pool="threads")
    sender = Celery(broker=recycling_stack.redis_url)
    sender.conf.task_send_sent_event = True
    try:
        sender.send_task(
            "webhooks.deliver",
            kwargs={"message_id": str(uuid.uuid4()), "tenant": "default"},
            queue="webhooks",
        )
    finally:
        sender.close()
    deliver = {"queue": "webhooks", "type": "webhooks.deliver"}
    _wait_value(exporter, "aia_worker_tasks_total", 1, state="succeeded", **deliver)
    assert _value(exporter, "aia_worker_task_queue_wait_seconds_count", **deliver) == 1
    assert _value(exporter, "aia_worker_task_runtime_seconds_count", **deliver) == 1


def test_events_while_the_exporter_is_down_are_counted_when_it_is_back(
    recycling_stack: Stack,
) -> None:
    port = free_port()
    first = recycling_stack.start_exporter(port)
    first.kill()
    with recycling_stack.client() as api:
        for task in [submit(api, {"seconds": 0}) for _ in range(3)]:
            wait_status(api, task["id"], {"succeeded"})
    port = free_port()
    second = recycling_stack.start_exporter(port)
    try:
        # A fresh process starts its counters at zero and counts what waited for it.
        _wait_value(port, "aia_worker_tasks_total", 3, state="succeeded", **DEFAULT)
    finally:
        second.stop()


def test_depth_and_oldest_age_of_a_queue_nobody_consumes(
    recycling_stack: Stack, exporter: int
) -> None:
    port = exporter
    worker = next(p for p in recycling_stack.processes if p.name == "worker-recycling")
    worker.stop()
    _wait_value(port, "aia_workers_online", 0, queue="default")
    with recycling_stack.client() as api:
        for _ in range(3):
            submit(api, {"seconds": 0})
    _wait_value(port, "aia_queue_depth", 3, queue="default")
    wait_for(
        lambda: _value(port, "aia_queue_oldest_age_seconds", queue="default") > 0,
        10,
        what="the oldest waiting task to age",
    )
    assert _value(port, "aia_queue_depth", queue="ml") == 0
    assert _value(port, "aia_queue_oldest_age_seconds", queue="ml") == 0
    # /status (and the dashboard's queue view) shows the same two signals.
    with recycling_stack.client() as api:
        broker = api.get("/status").json()["checks"]["broker"]
    assert broker["queue_depths"]["default"] == 3
    assert broker["oldest_waits"]["default"] > 0
    assert broker["oldest_waits"]["ml"] == 0
