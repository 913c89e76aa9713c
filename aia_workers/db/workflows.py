"""Workflows: graphs of agent steps, their runs, and each run's steps with their outputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aia_workers.db.base import Base, UTCDateTime

__all__ = ["Workflow", "WorkflowRun", "WorkflowRunStep"]


class Workflow(Base):
    """A named graph of agent steps in a tenant; ``steps`` is the validated graph (JSON).

    Workflows are not changed in place: a run copies the graph it runs, so a
    new shape is a new workflow.
    """

    __tablename__ = "workflows"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_workflows_tenant_name"),
        Index("ix_workflows_tenant", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    steps: Mapped[Any] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WorkflowRun(Base):
    """One run of a workflow: its own copy of the graph, where it stands, why it failed.

    ``attempt`` goes up with each resume; ``error`` is ``{step, message}`` of
    the step that failed it.
    """

    __tablename__ = "workflow_runs"
    __table_args__ = (
        Index("ix_workflow_runs_workflow", "tenant_id", "workflow_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(36))
    steps: Mapped[Any] = mapped_column(JSON)
    # queued | running | succeeded | failed | cancelled
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[Any] = mapped_column(JSON, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WorkflowRunStep(Base):
    """One step of a run: the task that runs it now, the input it got, its output or error.

    A resume gives a step that did not succeed a new task (and ``attempt``);
    one that succeeded keeps its output, which later steps read as input.
    """

    __tablename__ = "workflow_run_steps"

    run_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("workflow_runs.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str] = mapped_column(String(36))
    # queued | running | succeeded | failed | cancelled
    status: Mapped[str] = mapped_column(String(16))
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # Its place in the canvas of its attempt: steps of one level are sent together,
    # a later level once the one before it has succeeded.
    level: Mapped[int] = mapped_column(Integer, default=0)
    input: Mapped[Any] = mapped_column(JSON, nullable=True)
    output: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(String(4000), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
