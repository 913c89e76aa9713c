"""Tenant-scoped reads and writes of workflows, their runs and the runs' steps."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy.exc
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from aia_workers.db.cursors import keyset_page
from aia_workers.db.workflows import Workflow, WorkflowRun, WorkflowRunStep
from aia_workers.errors import ConflictError
from aia_workers.workflows.graph import StepSpec, levels

__all__ = ["ACTIVE", "WorkflowNameTakenError", "WorkflowRepository", "now"]

# Statuses of a run (and of a step) that is not over.
ACTIVE = ("queued", "running")


class WorkflowNameTakenError(ConflictError):
    """Raised when a tenant already has a workflow of the name asked for."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the tenant has a workflow named {name!r} already; pick another name")
        self.name = name


def now() -> datetime:
    return datetime.now(UTC)


class WorkflowRepository:
    """Workflows and runs of one tenant; no method can see or change another tenant's rows.

    Writes are flushed, not committed: the caller owns the transaction.
    """

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    # -- workflows --------------------------------------------------------------

    def create(
        self, *, name: str, steps: Sequence[Mapping[str, Any]], created_by: str | None = None
    ) -> Workflow:
        """A new workflow; WorkflowNameTakenError when the tenant uses ``name`` already."""
        row = Workflow(
            id=str(uuid.uuid4()),
            tenant_id=self._tenant_id,
            name=name,
            steps=[dict(s) for s in steps],
            created_by=created_by,
            created_at=now(),
        )
        try:
            with self._session.begin_nested():
                self._session.add(row)
        except sqlalchemy.exc.IntegrityError:
            raise WorkflowNameTakenError(name) from None
        return row

    def get(self, workflow_id: str) -> Workflow | None:
        stmt = select(Workflow).where(
            Workflow.tenant_id == self._tenant_id, Workflow.id == workflow_id
        )
        return self._session.scalars(stmt).one_or_none()

    def list(self, *, limit: int, cursor: str | None) -> tuple[list[Workflow], str | None]:
        """A page of the tenant's workflows, newest first, and the cursor of the next."""
        stmt = select(Workflow).where(Workflow.tenant_id == self._tenant_id)
        return keyset_page(
            self._session, stmt, Workflow.created_at, Workflow.id, limit=limit, cursor=cursor
        )

    def active_runs(self, workflow_id: str) -> int:
        stmt = select(func.count()).where(
            WorkflowRun.tenant_id == self._tenant_id,
            WorkflowRun.workflow_id == workflow_id,
            WorkflowRun.status.in_(ACTIVE),
        )
        return int(self._session.scalar(stmt) or 0)

    def delete(self, workflow: Workflow) -> None:
        """Delete ``workflow`` with its runs and their steps (the steps' task records stay)."""
        if workflow.tenant_id != self._tenant_id:
            raise ValueError("a workflow is deleted only through its own tenant's repository")
        runs = select(WorkflowRun.id).where(
            WorkflowRun.tenant_id == self._tenant_id, WorkflowRun.workflow_id == workflow.id
        )
        self._session.execute(
            delete(WorkflowRunStep).where(WorkflowRunStep.run_id.in_(runs.scalar_subquery()))
        )
        self._session.execute(
            delete(WorkflowRun).where(
                WorkflowRun.tenant_id == self._tenant_id, WorkflowRun.workflow_id == workflow.id
            )
        )
        self._session.delete(workflow)
        self._session.flush()

    # -- runs -------------------------------------------------------------------

    def create_run(
        self,
        workflow: Workflow,
        task_ids: Mapping[str, str],
        *,
        created_by: str | None = None,
        run_id: str | None = None,
    ) -> WorkflowRun:
        """A new queued run of ``workflow`` whose step ``s`` runs as task ``task_ids[s]``."""
        stamp = now()
        run = WorkflowRun(
            id=run_id or str(uuid.uuid4()),
            tenant_id=self._tenant_id,
            workflow_id=workflow.id,
            steps=workflow.steps,
            status="queued",
            error=None,
            attempt=1,
            created_by=created_by,
            created_at=stamp,
            updated_at=stamp,
        )
        self._session.add(run)
        self._session.flush()
        graph = [StepSpec.model_validate(s) for s in workflow.steps]
        level = {step: i for i, names in enumerate(levels(graph)) for step in names}
        for spec in workflow.steps:
            self._session.add(
                WorkflowRunStep(
                    run_id=run.id,
                    step_id=spec["id"],
                    tenant_id=self._tenant_id,
                    agent_id=spec["agent_id"],
                    status="queued",
                    task_id=task_ids[spec["id"]],
                    attempt=1,
                    level=level[spec["id"]],
                )
            )
        self._session.flush()
        return run

    def get_run(self, run_id: str, *, lock: bool = False) -> WorkflowRun | None:
        """The run ``run_id``; with ``lock``, its row is locked for this transaction
        (what serializes the steps of one run that end at the same time)."""
        stmt = select(WorkflowRun).where(
            WorkflowRun.tenant_id == self._tenant_id, WorkflowRun.id == run_id
        )
        if lock:
            stmt = stmt.with_for_update()
        return self._session.scalars(stmt).one_or_none()

    def runs(
        self, workflow_id: str, *, limit: int, cursor: str | None
    ) -> tuple[builtins.list[WorkflowRun], str | None]:
        """A page of the workflow's runs, newest first, and the cursor of the next."""
        stmt = select(WorkflowRun).where(
            WorkflowRun.tenant_id == self._tenant_id, WorkflowRun.workflow_id == workflow_id
        )
        return keyset_page(
            self._session, stmt, WorkflowRun.created_at, WorkflowRun.id, limit=limit, cursor=cursor
        )

    def steps(self, run_id: str) -> dict[str, WorkflowRunStep]:
        """The run's steps by id."""
        stmt = select(WorkflowRunStep).where(
            WorkflowRunStep.tenant_id == self._tenant_id, WorkflowRunStep.run_id == run_id
        )
        return {row.step_id: row for row in self._session.scalars(stmt)}

    def step_counts(self, run_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(steps succeeded, steps) of each run in ``run_ids``."""
        if not run_ids:
            return {}
        stmt = (
            select(WorkflowRunStep.run_id, WorkflowRunStep.status, func.count())
            .where(
                WorkflowRunStep.tenant_id == self._tenant_id,
                WorkflowRunStep.run_id.in_(run_ids),
            )
            .group_by(WorkflowRunStep.run_id, WorkflowRunStep.status)
        )
        counts: dict[str, tuple[int, int]] = {}
        for run_id, status, n in self._session.execute(stmt):
            done, total = counts.get(run_id, (0, 0))
            counts[run_id] = (done + (n if status == "succeeded" else 0), total + n)
        return counts
