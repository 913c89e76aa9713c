"""Counters and histograms of tasks, by queue and type, from the task event stream.

Every transition of every task is written once, by the scripts the API and
the workers already run, to the recorder stream (``keys.RECORDER_STREAM``):
its tenant, type and queue, the event, and the task's creation and this
attempt's start. Counting those entries in another process
(``aia_workers.telemetry.exporter``) costs the workers nothing per task, and a
worker process that is recycled or killed loses no count, since none is kept
in it. Pure: no Redis here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram

from aia_workers.backbone.states import TERMINAL, Event

__all__ = ["TaskMetrics"]

# From a webhook delivery's milliseconds to an hour of training.
_RUNTIME_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
)  # fmt: skip
_WAIT_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
)  # fmt: skip


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class TaskMetrics:
    """The instruments, on ``registry``; ``observe`` feeds them stream entries."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.finished = Counter(
            "aia_worker_tasks_total",
            "Tasks that reached a final state, by queue, type and state "
            "(succeeded, failed, cancelled).",
            ["queue", "type", "state"],
            registry=registry,
        )
        self.started = Counter(
            "aia_worker_task_starts_total",
            "Task attempts started by a worker, by queue and type.",
            ["queue", "type"],
            registry=registry,
        )
        self.retries = Counter(
            "aia_worker_task_retries_total",
            "Task attempts that ended in a retry, by queue and type.",
            ["queue", "type"],
            registry=registry,
        )
        self.runtime = Histogram(
            "aia_worker_task_runtime_seconds",
            "From an attempt's start to the task's final state, by queue and type.",
            ["queue", "type"],
            buckets=_RUNTIME_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "aia_worker_task_queue_wait_seconds",
            "From a task's submission to its first start, by queue and type.",
            ["queue", "type"],
            buckets=_WAIT_BUCKETS,
            registry=registry,
        )

    def start(self, queue: str, kind: str, waited: float | None) -> None:
        """An attempt started; ``waited`` since submission, for a task's first attempt."""
        self.started.labels(queue, kind).inc()
        if waited is not None:
            self.queue_wait.labels(queue, kind).observe(max(0.0, waited))

    def retry(self, queue: str, kind: str) -> None:
        """An attempt ended in a retry."""
        self.retries.labels(queue, kind).inc()

    def end(self, queue: str, kind: str, state: str, runtime: float | None) -> None:
        """The task reached ``state``; ``runtime`` from its last attempt's start, if it ran."""
        self.finished.labels(queue, kind, state).inc()
        if runtime is not None:
            self.runtime.labels(queue, kind).observe(max(0.0, runtime))

    def observe(self, entries: Iterable[Mapping[str, str]]) -> int:
        """Count recorder stream entries (their fields); returns how many were counted.

        An entry that is not a task event (unparsable, or trimmed to nothing) is skipped.
        """
        counted = 0
        for fields in entries:
            raw = fields.get("e")
            if not raw:
                continue
            try:
                event = orjson.loads(raw)
                name, status, at = event["event"], event["status"], float(event["time"])
            except (ValueError, KeyError, TypeError):
                continue
            queue, kind = fields.get("queue") or "unknown", fields.get("type") or "unknown"
            if name == Event.STARTED:
                created = _float(fields.get("created"))
                first = (event.get("data") or {}).get("attempt") == 1
                self.start(queue, kind, at - created if first and created is not None else None)
            elif name == Event.RETRYING:
                self.retry(queue, kind)
            elif status in TERMINAL and name != Event.QUEUED:
                started = _float(fields.get("started"))
                self.end(queue, kind, status, None if started is None else at - started)
            counted += 1
        return counted
