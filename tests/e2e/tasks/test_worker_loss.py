"""At-least-once: a worker killed mid-task loses nothing; the task runs again and ends."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.chaos import wait_all_terminal
from tests.conftest import _claim_redis_db, _release
from tests.support import (
    Stack,
    history_ids,
    private_stack,
    sse_events,
    submit,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def lonely_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack with no worker yet and a short visibility timeout, so redelivery is quick."""
    url = _claim_redis_db()
    stack = private_stack(tmp_path, url, env={"AIA_VISIBILITY_TIMEOUT_SECONDS": "5"})
    yield stack
    stack.stop()
    _release(url)


def _progress_seen(client: httpx.Client, task_id: str) -> bool:
    view = client.get(f"/v1/tasks/{task_id}").json()
    return bool(view["progress"]) and view["progress"]["current"] >= 2


def test_sigkilled_worker_task_is_redelivered_and_completes(lonely_stack: Stack) -> None:
    with lonely_stack.client() as client:
        first = lonely_stack.start_worker("doomed", concurrency=1)
        task = submit(client, {"seconds": 3, "steps": 6})
        wait_for(lambda: _progress_seen(client, task["id"]), 20, what="the task to be under way")
        first.kill()  # main process and pool child, no chance to requeue anything

        lonely_stack.start_worker("rescuer", concurrency=1)
        view = wait_status(client, task["id"], {"succeeded", "failed"}, timeout=60)
        assert view["status"] == "succeeded"
        assert view["attempts"] == 2
        events = list(sse_events(client, task["links"]["events"]))
        names = [e["event"] for e in events]
        assert names.count("started") == 2
        assert names[-1] == "succeeded"
        assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))


def test_sigkilled_pool_process_is_requeued_at_once(lonely_stack: Stack) -> None:
    with lonely_stack.client() as client:
        worker = lonely_stack.start_worker("survivor", concurrency=1)
        task = submit(client, {"seconds": 2, "steps": 4})
        wait_for(lambda: _progress_seen(client, task["id"]), 20, what="the task to be under way")
        children = psutil.Process(worker.popen.pid).children()
        assert children, "the prefork pool has no child process"
        for child in children:
            os.kill(child.pid, signal.SIGKILL)
        view = wait_status(client, task["id"], {"succeeded", "failed"}, timeout=60)
        assert view["status"] == "succeeded"
        assert view["attempts"] == 2
        assert worker.alive()


def test_a_worker_sigkilled_during_a_thousand_tasks_loses_none(lonely_stack: Stack) -> None:
    lonely_stack.start_recorder()
    worker = lonely_stack.start_worker("first", concurrency=2)
    events = lonely_stack.redis()
    with lonely_stack.client() as client:
        ids = [submit(client, {"seconds": 0.005})["id"] for _ in range(1000)]

        def done() -> int:
            statuses = [events.hget(f"aia:task:{t}", "status") for t in ids]
            return sum(s == "succeeded" for s in statuses)

        wait_for(lambda: done() >= 200, 60, 0.05, "a fifth of the tasks to finish")
        worker.kill()  # main process and pool children, mid-stream
        lonely_stack.start_worker("second", concurrency=2)

        result = wait_all_terminal(events, ids, timeout=120)
        assert result.unfinished == [], (
            result.statuses,
            {t: events.hgetall(f"aia:task:{t}") for t in result.unfinished[:3]},
        )
        assert result.statuses == {"succeeded": 1000}
        assert result.duplicated == []
        # The recorder's history holds every one of them.
        wait_for(lambda: history_ids(client) >= set(ids), 60, 1, "the history")
