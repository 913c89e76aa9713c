"""``task.succeeded``, ``task.failed`` and ``task.cancelled``, from the recorder's batches.

The recorder writes a task's end to the database and these events to the
outbox in one transaction, so every recorded end is announced exactly once
(a replayed batch finds its events already recorded under the same key).
Each event carries the traceparent of the run that ended its task, when it
was traced, so its deliveries join the task's trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aia_workers.backbone.scripts import TRACEPARENT_FIELD
from aia_workers.webhooks.outbox import Event

__all__ = ["task_finished_events"]

_EVENT_OF_STATUS = {
    "succeeded": "task.succeeded",
    "failed": "task.failed",
    "cancelled": "task.cancelled",
}


def task_finished_events(rows: Iterable[Mapping[str, Any]]) -> list[Event]:
    """One event per task row (as the recorder merges them) that has ended."""
    events = []
    for row in rows:
        name = _EVENT_OF_STATUS.get(row["status"])
        if name is None or not row.get("tenant_id"):
            continue
        payload = {
            "task_id": row["id"],
            "type": row["type"],
            "queue": row["queue"],
            "status": row["status"],
            "result": row.get("result"),
            "error": row.get("error"),
            "created_at": row.get("created_at"),
            "finished_at": row.get("finished_at"),
        }
        events.append(
            Event(
                row["tenant_id"],
                name,
                payload,
                dedupe_key=f"{name}:{row['id']}",
                traceparent=row.get(TRACEPARENT_FIELD),
            )
        )
    return events
