"""The JSON shape of a task, from its live Redis record or its database row."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from aia_workers.db.tasks import TaskRecord

__all__ = ["iso_time", "links", "view_from_hash", "view_from_record"]


def links(task_id: str) -> dict[str, str]:
    return {"self": f"/v1/tasks/{task_id}", "events": f"/v1/tasks/{task_id}/events"}


def iso_time(value: str | float | datetime | None) -> str | None:
    """ISO 8601 for a datetime or unix seconds (as a number or a string); None for none."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return datetime.fromtimestamp(float(value), UTC).isoformat()


def _json(value: str | None) -> Any:
    return None if value in (None, "") else orjson.loads(value)


def view_from_hash(h: Mapping[str, str]) -> dict[str, Any]:
    task_id = h["id"]
    return {
        "id": task_id,
        "type": h.get("type"),
        "queue": h.get("queue"),
        "status": h.get("status"),
        "seq": int(h.get("seq", 0)),
        "attempts": int(h.get("attempts", 0)),
        "progress": _json(h.get("progress")),
        "payload": _json(h.get("payload")),
        "result": _json(h.get("result")),
        "error": _json(h.get("error")),
        "priority": int(h["priority"]) if h.get("priority") else None,
        "eta": h.get("eta") or None,
        "created_at": iso_time(h.get("created_at")),
        "started_at": iso_time(h.get("started_at")),
        "finished_at": iso_time(h.get("finished_at")),
        "updated_at": iso_time(h.get("updated_at")),
        "links": links(task_id),
    }


def view_from_record(r: TaskRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "type": r.type,
        "queue": r.queue,
        "status": r.status,
        "seq": r.seq,
        "attempts": r.attempts,
        "progress": r.progress,
        "payload": r.payload,
        "result": r.result,
        "error": r.error,
        "priority": None,
        "eta": None,
        "created_at": iso_time(r.created_at),
        "started_at": iso_time(r.started_at),
        "finished_at": iso_time(r.finished_at),
        "updated_at": iso_time(r.updated_at),
        "links": links(r.id),
    }
