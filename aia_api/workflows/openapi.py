"""The workflow routes' tag and parameters."""

from __future__ import annotations

from aia_api.http.openapi import Tag, path_param

__all__ = ["RUN_ID", "STEP_ID", "WORKFLOWS", "WORKFLOW_ID"]

WORKFLOWS = Tag(
    "workflows",
    "A workflow is a graph of agent steps in a tenant, one step's output feeding the next. "
    "A run of it is Celery canvas (chain for a sequence, group for steps side by side, chord "
    "for a fan-in) of `agents.workflow_step` tasks, one per step: each is a task like any "
    "other, with its own events and a cancel. A failed step fails the run, naming the step; "
    "a failed run resumes from the steps that did not succeed.",
)
WORKFLOW_ID = path_param("WorkflowId", "workflow_id", "The workflow's id.")
RUN_ID = path_param("WorkflowRunId", "run_id", "The workflow run's id.")
STEP_ID = path_param("WorkflowStepId", "step_id", "The step's id in the workflow.")
