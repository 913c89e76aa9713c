"""Task history: one row per task, written by the recorder from the event stream."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from aia_workers.db.base import Base, UTCDateTime

__all__ = [
    "TaskRecord",
]


class TaskRecord(Base):
    """The history of one task, written by the recorder from the event stream."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_tasks_tenant_status", "tenant_id", "status"),
        Index("ix_tasks_tenant_type", "tenant_id", "type"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(128))
    queue: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    payload: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    result: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    error: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    priority: Mapped[int | None] = mapped_column(Integer, nullable=True)
    eta: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
