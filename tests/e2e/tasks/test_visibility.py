"""Long tasks outlive the Redis visibility timeout without running twice; shutdown loses nothing."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import _claim_redis_db, _release
from tests.support import Stack, private_stack, sse_events, submit, wait_for, wait_status

pytestmark = pytest.mark.e2e

VISIBILITY_SECONDS = 4


@pytest.fixture
def short_visibility_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack whose Redis transport would redeliver anything held for 4 s untouched."""
    url = _claim_redis_db()
    env = {"AIA_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_SECONDS)}
    stack = private_stack(tmp_path, url, env=env)
    yield stack
    stack.stop()
    _release(url)


def _starts(client: httpx.Client, task: dict[str, object]) -> int:
    links = task["links"]
    assert isinstance(links, dict)
    return [e["event"] for e in sse_events(client, links["events"])].count("started")


def test_a_task_held_past_the_visibility_timeout_runs_once(
    short_visibility_stack: Stack,
) -> None:
    stack = short_visibility_stack
    # Two idle workers: either would take a message the transport put back.
    stack.start_worker("holder", concurrency=1)
    stack.start_worker("bystander", concurrency=1)
    with stack.client() as client:
        running = submit(client, {"seconds": VISIBILITY_SECONDS * 3.5, "steps": 7})
        # Held unstarted (countdown) past the timeout as well.
        waiting = submit(client, {"seconds": 0.1}, countdown=VISIBILITY_SECONDS * 2.5)
        for task in (running, waiting):
            view = wait_status(client, task["id"], {"succeeded", "failed"}, timeout=90)
            assert view["status"] == "succeeded"
            assert view["attempts"] == 1
            assert _starts(client, task) == 1


def test_sigterm_lets_the_running_task_finish_and_loses_nothing(
    short_visibility_stack: Stack,
) -> None:
    stack = short_visibility_stack
    worker = stack.start_worker("leaving", concurrency=1)
    with stack.client() as client:
        running = submit(client, {"seconds": 3, "steps": 6})
        # Prefetched by the same worker, not yet started when it is told to stop.
        queued = [submit(client, {"seconds": 0.1}) for _ in range(3)]

        def under_way() -> bool:
            view = client.get(f"/v1/tasks/{running['id']}").json()
            return bool(view["progress"]) and view["progress"]["current"] >= 1

        wait_for(under_way, 20, what="the long task to be under way")
        worker.popen.send_signal(signal.SIGTERM)  # the main process only: warm shutdown
        worker.popen.wait(60)

        view = client.get(f"/v1/tasks/{running['id']}").json()
        assert view["status"] == "succeeded", worker.output()[-2000:]
        assert view["attempts"] == 1

        stack.start_worker("successor", concurrency=1)
        for task in queued:
            view = wait_status(client, task["id"], {"succeeded", "failed"}, timeout=60)
            assert view["status"] == "succeeded"
            assert view["attempts"] == 1
