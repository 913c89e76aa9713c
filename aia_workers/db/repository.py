"""Tenant-scoped queries: the one place task history is read from the database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from aia_workers.db.cursors import InvalidCursorError, decode_cursor, encode_cursor
from aia_workers.db.models import TaskRecord

__all__ = ["InvalidCursorError", "TaskPage", "TaskRepository"]


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
            created, last_id = decode_cursor(cursor)
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
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
        return TaskPage(rows, next_cursor)
