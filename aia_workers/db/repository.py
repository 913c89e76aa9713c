"""Tenant-scoped queries: the one place task history is read from the database."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from aia_workers.db.models import TaskRecord
from aia_workers.errors import AiaError

__all__ = ["InvalidCursorError", "TaskPage", "TaskRepository"]


class InvalidCursorError(AiaError):
    """Raised when a pagination cursor was not made by this API or was altered."""


@dataclass(frozen=True, slots=True)
class TaskPage:
    items: list[TaskRecord]
    next_cursor: str | None


class TaskRepository:
    """Reads tasks of one tenant; no method can see another tenant's rows."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def get(self, task_id: str) -> TaskRecord | None:
        stmt = select(TaskRecord).where(
            TaskRecord.tenant_id == self._tenant_id, TaskRecord.id == task_id
        )
        return self._session.scalars(stmt).one_or_none()

    def list(
        self,
        *,
        statuses: Sequence[str] = (),
        types: Sequence[str] = (),
        limit: int = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        """Newest first, ``limit`` at a time; pass ``next_cursor`` back for more."""
        stmt = select(TaskRecord).where(TaskRecord.tenant_id == self._tenant_id)
        if statuses:
            stmt = stmt.where(TaskRecord.status.in_(statuses))
        if types:
            stmt = stmt.where(TaskRecord.type.in_(types))
        if cursor:
            created, last_id = _decode_cursor(cursor)
            stmt = stmt.where(
                or_(
                    TaskRecord.created_at < created,
                    and_(TaskRecord.created_at == created, TaskRecord.id < last_id),
                )
            )
        stmt = stmt.order_by(TaskRecord.created_at.desc(), TaskRecord.id.desc()).limit(limit + 1)
        rows = list(self._session.scalars(stmt))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1]) if more and rows else None
        return TaskPage(rows, next_cursor)


def _encode_cursor(row: TaskRecord) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_text, last_id = json.loads(raw)
        created = datetime.fromisoformat(created_text)
        if created.tzinfo is None or not isinstance(last_id, str):
            raise ValueError("incomplete cursor")
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise InvalidCursorError(
            "the cursor is not one this API returned; start again without it"
        ) from exc
    return created, last_id
