"""Schedules: what to run, when, for whom, and the claim that makes each slot fire once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aia_workers.db.base import Base, UTCDateTime

__all__ = ["Schedule"]


class Schedule(Base):
    """A tenant's schedule of a catalog task, or (``tenant_id`` None) a system one.

    ``next_run_at`` is the slot due next (None while disabled). A beat claims
    a due slot by moving ``next_run_at`` on only if it still holds that slot
    (compare-and-set), so of several beats one wins; the slot then stays
    ``pending_slot_at`` until its task is submitted, and another beat takes it
    over once ``pending_until`` passes (the winner died in between).
    """

    __tablename__ = "schedules"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_schedules_tenant_name"),
        Index("ix_schedules_due", "enabled", "next_run_at"),
        Index("ix_schedules_pending", "pending_until"),
        Index("ix_schedules_tenant", "tenant_id", "created_at", "id"),
    )

    # A uuid; system rows are "system:<name>", so two beats upserting one collide.
    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    # A catalog task type; for a system schedule, the Celery task name.
    task: Mapped[str] = mapped_column(String(200))
    # The task's payload; for a system schedule {"args", "kwargs", "queue"}.
    payload: Mapped[Any] = mapped_column(JSON)
    cron: Mapped[str | None] = mapped_column(String(200), nullable=True)
    timezone: Mapped[str] = mapped_column(String(64))
    interval_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    pending_slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    pending_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The last slot that fired: its time, when its task was submitted, the task.
    last_slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Why the last slot could not be submitted (or is still waiting to be), if it could not.
    last_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
