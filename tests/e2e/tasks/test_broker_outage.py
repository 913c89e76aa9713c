"""Workers ride through a broker restart under submit load: nothing lost, nothing run twice."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.brokers import PrivateRabbitMQ, PrivateRedis
from tests.chaos import SubmitLoad, wait_all_terminal
from tests.support import Process, Stack, history_ids, private_stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

# Long enough to outlast Celery's first reconnect attempts; bench/chaos.py runs 60 s.
OUTAGE_SECONDS = 8
# Tasks terminated mid-run by the outage come back after this (see the README).
VISIBILITY_SECONDS = 10


def _stack(tmp: Path, redis_url: str, broker_url: str) -> Stack:
    env = {"AIA_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_SECONDS)}
    stack = private_stack(tmp, redis_url, broker_url=broker_url, env=env)
    stack.start_recorder()
    return stack


def _workers(stack: Stack) -> list[Process]:
    # Both pool kinds AIA runs: prefork (most queues) and threads (webhooks).
    return [
        stack.start_worker("prefork", concurrency=2),
        stack.start_worker("threads", pool="threads", concurrency=4),
    ]


def _ride_through(
    stack: Stack, workers: list[Process], stop: Callable[[], None], start: Callable[[], None]
) -> None:
    load = SubmitLoad(stack).start()
    wait_for(lambda: len(load.accepted) >= 50, 30, what="load to get going")
    stop()
    time.sleep(OUTAGE_SECONDS)
    start()
    resumed_from = len(load.accepted)
    events = stack.redis()

    def consuming() -> bool:
        fresh = load.accepted[resumed_from:]
        return any(events.hget(f"aia:task:{t}", "status") == "succeeded" for t in fresh[:50])

    # Consumption resumes on its own, within 15 s of the broker coming back.
    wait_for(consuming, 15, 0.2, "a task accepted after the restart to succeed")
    time.sleep(2)
    load.stop()

    result = wait_all_terminal(events, load.accepted, timeout=VISIBILITY_SECONDS * 6)
    assert not load.bad, f"answers other than 202/429/503+Retry-After: {load.answers}"
    assert load.answers["503"] > 0, "the outage was not seen by the API"
    assert result.unfinished == [], (
        f"{result.lost} of {len(load.accepted)} never finished: {result.statuses}"
    )
    assert result.statuses == {"succeeded": len(load.accepted)}
    assert result.duplicated == []
    for worker in workers:
        assert worker.alive(), worker.output()[-3000:]
        assert "Unrecoverable error" not in worker.output()
    with stack.client() as client:
        wait_for(lambda: history_ids(client) >= set(load.accepted), 30, 1, "the history")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.close()


@pytest.fixture
def private_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    # A fixture, so the node stops even when the stack fails to start.
    if not PrivateRabbitMQ.available():
        pytest.skip("rabbitmq-server is not installed")
    server = PrivateRabbitMQ()
    server.start()
    yield server
    server.close()


def test_workers_ride_through_a_redis_restart(private_redis: PrivateRedis, tmp_path: Path) -> None:
    stack = _stack(tmp_path, private_redis.url, private_redis.url)
    try:
        workers = _workers(stack)
        _ride_through(stack, workers, private_redis.shutdown, private_redis.start)
    finally:
        stack.stop()


def test_workers_ride_through_a_rabbitmq_restart(
    private_redis: PrivateRedis, private_rabbitmq: PrivateRabbitMQ, tmp_path: Path
) -> None:
    stack = _stack(tmp_path, private_redis.url, private_rabbitmq.url)
    try:
        workers = _workers(stack)
        _ride_through(stack, workers, private_rabbitmq.stop, private_rabbitmq.start)
    finally:
        stack.stop()


def test_threads_worker_rides_through_a_rabbitmq_restart(
    private_redis: PrivateRedis, private_rabbitmq: PrivateRabbitMQ, tmp_path: Path
) -> None:
    # The threads worker alone, so it must resume by itself: RabbitMQ keeps the
    # deliveries a live connection holds, and no other worker could run them.
    # The tasks it was running when the connection dropped go on (a thread
    # cannot be terminated), and what Celery does about them after the
    # reconnect must not stall it (worker_enable_prefetch_count_reduction in
    # celeryconfig.py).
    stack = _stack(tmp_path, private_redis.url, private_rabbitmq.url)
    try:
        workers = [stack.start_worker("threads", pool="threads", concurrency=4)]
        _ride_through(stack, workers, private_rabbitmq.stop, private_rabbitmq.start)
    finally:
        stack.stop()
