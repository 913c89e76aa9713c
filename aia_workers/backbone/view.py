"""A task as its tenant sees it: one JSON shape, from the live record or the history.

Submit's reply, ``GET /v1/tasks/{id}``, the list and cancel all answer this
shape (``aia_api.tasks.responses.TaskView`` documents it). Redis holds the live
record (``keys.task_key``) while the task is young; once it expires the
recorder's database row stands in for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

__all__ = ["TaskRow", "iso_time", "links", "task_view", "view_from_hash", "view_from_record"]


class TaskRow(Protocol):
    """What the view reads from a task's database row (``TaskRecord``)."""

    id: str
    type: str
    queue: str
    status: str
    seq: int
    attempts: int
    progress: Any
    payload: Any
    result: Any
    error: Any
    priority: int | None
    eta: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


def links(task_id: str) -> dict[str, str]:
    return {"self": f"/v1/tasks/{task_id}", "events": f"/v1/tasks/{task_id}/events"}


def iso_time(value: str | float | datetime | None) -> str | None:
    """ISO 8601 for a datetime or unix seconds (as a number or a string); None for none."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return datetime.fromtimestamp(float(value), UTC).isoformat()


def task_view(
    *,
    task_id: str,
    type_name: str | None,
    queue: str | None,
    status: str | None,
    seq: int,
    attempts: int,
    progress: Any,
    payload: Any,
    result: Any,
    error: Any,
    priority: int | None,
    eta: str | None,
    created_at: str | None,
    started_at: str | None,
    finished_at: str | None,
    updated_at: str | None,
) -> dict[str, Any]:
    """The task's view; times are ISO 8601."""
    return {
        "id": task_id,
        "type": type_name,
        "queue": queue,
        "status": status,
        "seq": seq,
        "attempts": attempts,
        "progress": progress,
        "payload": payload,
        "result": result,
        "error": error,
        "priority": priority,
        "eta": eta,
        "created_at": created_at,
        "started_at": started_at,
        "finished_at": finished_at,
        "updated_at": updated_at,
        "links": links(task_id),
    }


def view_from_hash(h: Mapping[str, str]) -> dict[str, Any]:
    """The view of a task from its live Redis record."""
    return task_view(
        task_id=h["id"],
        type_name=h.get("type"),
        queue=h.get("queue"),
        status=h.get("status"),
        seq=int(h.get("seq", 0)),
        attempts=int(h.get("attempts", 0)),
        progress=_json(h.get("progress")),
        payload=_json(h.get("payload")),
        result=_json(h.get("result")),
        error=_json(h.get("error")),
        priority=int(h["priority"]) if h.get("priority") else None,
        eta=h.get("eta") or None,
        created_at=iso_time(h.get("created_at")),
        started_at=iso_time(h.get("started_at")),
        finished_at=iso_time(h.get("finished_at")),
        updated_at=iso_time(h.get("updated_at")),
    )


def view_from_record(r: TaskRow) -> dict[str, Any]:
    """The view of a task from its database row, once its live record expired."""
    return task_view(
        task_id=r.id,
        type_name=r.type,
        queue=r.queue,
        status=r.status,
        seq=r.seq,
        attempts=r.attempts,
        progress=r.progress,
        payload=r.payload,
        result=r.result,
        error=r.error,
        priority=r.priority,
        eta=iso_time(r.eta),
        created_at=iso_time(r.created_at),
        started_at=iso_time(r.started_at),
        finished_at=iso_time(r.finished_at),
        updated_at=iso_time(r.updated_at),
    )


def _json(value: str | None) -> Any:
    return None if value in (None, "") else orjson.loads(value)
