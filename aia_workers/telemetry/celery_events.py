"""The same task metrics for Celery tasks outside AIA's catalog, from Celery's own events.

AIA's tasks write every transition to the task event stream (``task_metrics``);
the tasks AIA sends with plain Celery (webhook deliveries from the outbox
relay, and any other task not in the catalog) keep no such record. For those
the exporter reads Celery's task events, which every worker sends anyway for
Flower (``worker_send_task_events``, ``task_send_sent_event``): nothing more on
the worker's path. Celery broadcasts events to every receiver, so two
exporters would each count every such task: run one.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from celery import Celery

from aia_workers.telemetry.task_metrics import TaskMetrics

__all__ = ["CeleryEventCounter"]

log = logging.getLogger(__name__)

# Tasks between their sent event and their end that are remembered; beyond
# that the oldest are forgotten (their end is then counted without a queue wait).
_REMEMBERED = 50_000


@dataclass(slots=True)
class _Seen:
    name: str
    queue: str
    sent: float | None = None
    started: float | None = None


class CeleryEventCounter:
    """Feeds ``metrics`` from Celery task events of tasks ``counted(name)`` selects."""

    def __init__(self, app: Celery, metrics: TaskMetrics, counted: Callable[[str], bool]) -> None:
        self._app = app
        self._metrics = metrics
        self._counted = counted
        self._tasks: OrderedDict[str, _Seen] = OrderedDict()
        self._queues: dict[str, str] = {}
        self._receiver: Any = None

    def _queue_of(self, name: str) -> str:
        if name not in self._queues:
            route = self._app.amqp.router.route({}, name)
            queue = route.get("queue")
            self._queues[name] = getattr(queue, "name", None) or str(queue or "unknown")
        return self._queues[name]

    def on_event(self, event: Mapping[str, Any]) -> None:
        """Count one Celery event (a dict as Celery sends it)."""
        kind, uuid = event.get("type", ""), event.get("uuid")
        if not kind.startswith("task-") or not uuid:
            return
        at = float(event.get("timestamp") or 0.0)
        seen = self._tasks.get(uuid)
        name = event.get("name")
        if seen is None:
            if not name or not self._counted(name):
                return
            seen = _Seen(name, event.get("queue") or self._queue_of(name))
            self._tasks[uuid] = seen
            if len(self._tasks) > _REMEMBERED:
                self._tasks.popitem(last=False)
        if kind == "task-sent":
            seen.sent = at
        elif kind == "task-started":
            # The queue wait is the first attempt's: a retry's countdown is not time in the queue.
            first = seen.started is None
            waited = at - seen.sent if first and seen.sent is not None else None
            self._metrics.start(seen.queue, seen.name, waited)
            seen.started = at
        elif kind == "task-retried":
            self._metrics.retry(seen.queue, seen.name)
        elif kind in ("task-succeeded", "task-failed", "task-revoked"):
            state = {"task-succeeded": "succeeded", "task-failed": "failed"}.get(kind, "cancelled")
            runtime = event.get("runtime")
            if runtime is None and seen.started is not None and kind != "task-revoked":
                runtime = at - seen.started
            self._metrics.end(
                seen.queue, seen.name, state, None if runtime is None else float(runtime)
            )
            del self._tasks[uuid]

    def run(self, stop: threading.Event) -> None:
        """Receive events until ``stop`` is set, reconnecting with backoff."""
        watcher = threading.Thread(
            target=self._stop_on, args=(stop,), name="aia-events-stop", daemon=True
        )
        watcher.start()
        backoff = 0.5
        while not stop.is_set():
            try:
                with self._app.connection_for_read() as conn:
                    self._receiver = self._app.events.Receiver(conn, handlers={"*": self.on_event})
                    if stop.is_set():
                        break
                    self._receiver.capture(limit=None, timeout=None, wakeup=False)
                    backoff = 0.5
            except Exception as exc:  # the broker went away, or its connection failed
                log.warning("exporter: Celery events: %s; retrying in %.1f s", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _stop_on(self, stop: threading.Event) -> None:
        stop.wait()
        if self._receiver is not None:
            # The receiver checks this between its one-second drains.
            self._receiver.should_stop = True
