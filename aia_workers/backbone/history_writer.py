"""Writes task history to the database from the recorder stream, in batches.

Each batch becomes one multi-row upsert. It is idempotent and order-safe: a
row only moves forward (a higher sequence number wins), and facts that are set
once (payload, creation and start times) are filled whenever they are missing,
so replaying a batch, or a stale batch arriving late, never loses information.
Priority and ETA come from the queued event, like the payload.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, and_, case, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aia_workers.backbone.event import TaskEvent
from aia_workers.backbone.scripts import TRACEPARENT_FIELD
from aia_workers.db.tasks import TaskRecord

__all__ = ["apply_events", "apply_rows", "merge_events"]


def _ts(value: Any) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


def merge_events(entries: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
    """Fold recorder stream entries into one row per task (pure; no database)."""
    rows: dict[str, dict[str, Any]] = {}
    for entry in entries:
        event = TaskEvent.from_json(entry["e"])
        task_id = entry["task"]
        row = rows.get(task_id)
        if row is None:
            row = rows[task_id] = {
                "id": task_id,
                "tenant_id": entry.get("tenant") or "",
                "type": entry.get("type") or "",
                "queue": entry.get("queue") or "",
                "status": event.status,
                "seq": 0,
                "attempts": None,
                "progress": None,
                "payload": None,
                "result": None,
                "error": None,
                "created_at": None,
                "started_at": None,
                "finished_at": None,
                "updated_at": _ts(event.time),
                "priority": None,
                "eta": None,
            }
        seq = event.seq
        name = event.event
        data = event.data
        when = _ts(event.time)
        if name == "queued":
            row["created_at"] = when
            row["priority"] = data.get("priority")
            row["eta"] = datetime.fromisoformat(data["eta"]) if data.get("eta") else None
            if "payload" in entry:
                row["payload"] = json.loads(entry["payload"])
        elif name == "started":
            row["started_at"] = row["started_at"] or when
            row["attempts"] = data.get("attempt")
        elif name == "progress" and "waiting" not in data:
            # A run waiting for its agent's slot says so on its stream, but it has
            # made no progress: the live record keeps none either.
            row["progress"] = data
        elif name == "succeeded":
            row["result"] = data.get("result")
        elif name == "failed":
            row["error"] = data.get("error")
        if event.ends:
            row["finished_at"] = when
            if entry.get(TRACEPARENT_FIELD):
                # Not a column: the webhooks this end causes continue its trace.
                row[TRACEPARENT_FIELD] = entry[TRACEPARENT_FIELD]
        if seq > row["seq"]:
            row["seq"] = seq
            row["status"] = event.status
            row["updated_at"] = when
    for row in rows.values():
        # A task first seen mid-life (its queued event trimmed) still needs a creation time.
        row["created_at"] = row["created_at"] or row["started_at"] or row["updated_at"]
    return list(rows.values())


def _columns(row: dict[str, Any]) -> dict[str, Any]:
    values = {**row, "attempts": row["attempts"] or 0}
    values.pop(TRACEPARENT_FIELD, None)
    return values


def apply_events(session: Session, entries: Iterable[Mapping[str, str]]) -> int:
    """Upsert the tasks touched by ``entries``; returns how many rows were written."""
    return apply_rows(session, merge_events(entries))


def apply_rows(session: Session, rows: list[dict[str, Any]]) -> int:
    """Upsert rows made by ``merge_events``; returns how many were written."""
    if not rows:
        return 0
    pg = session.get_bind().dialect.name == "postgresql"
    insert = postgresql.insert if pg else sqlite.insert
    greatest, least = (func.greatest, func.least) if pg else (func.max, func.min)
    table = cast(Table, TaskRecord.__table__)
    stmt = insert(table)
    new = stmt.excluded
    newer = table.c.seq < new.seq

    def forward(column: str, *, only_given: bool = False) -> Any:
        condition = and_(newer, new[column].is_not(None)) if only_given else newer
        return case((condition, new[column]), else_=table.c[column])

    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={
            "status": forward("status"),
            "seq": greatest(table.c.seq, new.seq),
            "updated_at": forward("updated_at"),
            "finished_at": forward("finished_at"),
            "progress": forward("progress", only_given=True),
            "result": forward("result", only_given=True),
            "error": forward("error", only_given=True),
            "attempts": greatest(table.c.attempts, new.attempts),
            "payload": func.coalesce(table.c.payload, new.payload),
            "created_at": least(table.c.created_at, new.created_at),
            "started_at": func.coalesce(table.c.started_at, new.started_at),
            "priority": func.coalesce(table.c.priority, new.priority),
            "eta": func.coalesce(table.c.eta, new.eta),
        },
    )
    # One statement with many parameter sets: compiled once and cached, then
    # sent by the driver as a batch.
    session.execute(stmt, [_columns(r) for r in rows])
    return len(rows)
