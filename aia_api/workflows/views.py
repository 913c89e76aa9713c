"""JSON views of workflows, their runs and the runs' steps."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aia_workers.db.workflows import Workflow, WorkflowRun, WorkflowRunStep

__all__ = ["run_view", "step_detail", "workflow_view"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def workflow_view(row: Workflow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "steps": row.steps,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "links": {"self": f"/v1/workflows/{row.id}", "runs": f"/v1/workflows/{row.id}/runs"},
    }


def _step_links(run_id: str, step: WorkflowRunStep) -> dict[str, str]:
    return {
        "self": f"/v1/workflows/runs/{run_id}/steps/{step.step_id}",
        "task": f"/v1/tasks/{step.task_id}",
        "events": f"/v1/tasks/{step.task_id}/events",
    }


def run_view(
    run: WorkflowRun,
    steps: Mapping[str, WorkflowRunStep],
    tasks: Mapping[str, dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """``run`` with its ``steps``; ``tasks`` (step id -> task view) adds each step's progress."""
    tasks = tasks or {}
    items = []
    for spec in run.steps:
        step = steps[spec["id"]]
        task = tasks.get(step.step_id)
        items.append(
            {
                "id": step.step_id,
                "agent_id": step.agent_id,
                "status": step.status,
                "task_id": step.task_id,
                "attempt": step.attempt,
                "progress": task.get("progress") if task else None,
                "error": step.error,
                "started_at": _iso(step.started_at),
                "finished_at": _iso(step.finished_at),
                "links": _step_links(run.id, step),
            }
        )
    done = sum(1 for s in steps.values() if s.status == "succeeded")
    base = f"/v1/workflows/runs/{run.id}"
    return {
        "id": run.id,
        "workflow_id": run.workflow_id,
        "status": run.status,
        "error": run.error,
        "attempt": run.attempt,
        "progress": {"done": done, "total": len(steps)},
        "steps": items,
        "created_by": run.created_by,
        "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
        "finished_at": _iso(run.finished_at),
        "links": {
            "self": base,
            "workflow": f"/v1/workflows/{run.workflow_id}",
            "resume": f"{base}/resume",
            "cancel": f"{base}/cancel",
        },
    }


def step_detail(step: WorkflowRunStep) -> dict[str, Any]:
    return {
        "id": step.step_id,
        "run_id": step.run_id,
        "agent_id": step.agent_id,
        "status": step.status,
        "task_id": step.task_id,
        "attempt": step.attempt,
        "input": step.input,
        "output": step.output,
        "error": step.error,
        "started_at": _iso(step.started_at),
        "finished_at": _iso(step.finished_at),
        "links": {**_step_links(step.run_id, step), "run": f"/v1/workflows/runs/{step.run_id}"},
    }
