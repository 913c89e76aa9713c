"""Flower's view: a worker's Celery task events reach an event receiver, every one of them.

The worker publishes them in batches (``aia_workers.backbone.consumer``); a
receiver such as Flower's must still see each task received, started and
succeeded, on both brokers.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from celery import Celery

from tests.support import Stack, submit, wait_for, wait_status

pytestmark = pytest.mark.e2e

TASKS = 30
LIFECYCLE = {"task-received", "task-started", "task-succeeded"}


class _Receiver:
    """Celery's event receiver, as Flower runs it, on a thread of its own."""

    def __init__(self, broker_url: str) -> None:
        self.app = Celery(broker=broker_url)
        self.app.conf.accept_content = ["json"]
        self.events: dict[str, set[str]] = defaultdict(set)
        self.workers_heard = threading.Event()
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type", "")
        if kind.startswith("worker-"):
            self.workers_heard.set()
        elif kind.startswith("task-") and event.get("uuid"):
            self.events[event["uuid"]].add(kind)

    def _run(self) -> None:
        with self.app.connection_for_read() as conn:
            self._receiver = self.app.events.Receiver(conn, handlers={"*": self._on_event})
            self._receiver.capture(limit=None, timeout=None, wakeup=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(5)
        self.app.close()


@pytest.fixture
def receiver(stack: Stack) -> Iterator[_Receiver]:
    watching = _Receiver(stack.env["AIA_BROKER_URL"])
    watching.start()
    try:
        # A worker heartbeat (every 2 s, or the answer to the wake-up) means
        # the receiver is bound and hears what the worker sends from now on.
        assert watching.workers_heard.wait(30), "no worker event reached the receiver"
        yield watching
    finally:
        watching.stop()


def test_every_task_event_reaches_the_receiver(api: httpx.Client, receiver: _Receiver) -> None:
    ids = [submit(api, {"seconds": 0})["id"] for _ in range(TASKS)]
    for task_id in ids:
        wait_status(api, task_id, {"succeeded"})

    def complete() -> bool:
        return all(receiver.events.get(task_id, set()) >= LIFECYCLE for task_id in ids)

    wait_for(
        complete,
        15,
        what="received, started and succeeded events for every task",
    )
