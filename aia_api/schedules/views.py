"""JSON views of schedules; the last run's status is read from its task's record."""

from __future__ import annotations

from typing import Any

from aia_workers.backbone.view import iso_time
from aia_workers.db.schedules import Schedule

__all__ = ["schedule_view"]


def schedule_view(row: Schedule, task: dict[str, Any] | None) -> dict[str, Any]:
    """``row`` as its tenant sees it; ``task`` is the view of its last run's task, if known."""
    last_run = None
    if row.last_slot_at is not None and row.last_run_at is not None:
        last_run = {
            "slot_at": row.last_slot_at.isoformat(),
            "submitted_at": row.last_run_at.isoformat(),
            "task_id": row.last_task_id,
            "status": task.get("status") if task else None,
            # While a slot is pending, last_error is why it waits (see "retrying").
            "error": row.last_error if row.pending_slot_at is None else None,
        }
    links = {"self": f"/v1/schedules/{row.id}"}
    if row.last_task_id:
        links["last_task"] = f"/v1/tasks/{row.last_task_id}"
    return {
        "id": row.id,
        "name": row.name,
        "type": row.task,
        "payload": row.payload,
        "cron": row.cron,
        "timezone": row.timezone,
        "interval_seconds": row.interval_seconds,
        "enabled": row.enabled,
        "next_run_at": iso_time(row.next_run_at),
        "last_run": last_run,
        "retrying": row.last_error if row.pending_slot_at is not None else None,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "links": links,
    }
