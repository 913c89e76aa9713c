"""Tenant-scoped queries: the one place task history is read from the database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aia_workers.db.cursors import InvalidCursorError, keyset_page
from aia_workers.db.tasks import TaskRecord

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
        rows, next_cursor = keyset_page(
            self._session, stmt, TaskRecord.created_at, TaskRecord.id, limit=limit, cursor=cursor
        )
        return TaskPage(rows, next_cursor)

    def outcomes(self, since: datetime, *, task_type: str | None = None) -> dict[str, int]:
        """How many tasks ended since ``since``, by terminal status; of ``task_type`` if given.

        Statuses with no task are absent; a task still running or retrying is not counted.
        """
        t = TaskRecord
        stmt = (
            select(t.status, func.count())
            .where(t.tenant_id == self._tenant_id, t.finished_at >= since)
            .group_by(t.status)
        )
        if task_type is not None:
            stmt = stmt.where(t.type == task_type)
        return {str(status): int(count) for status, count in self._session.execute(stmt)}
