"""Payload of the ``agents.workflow_step`` task type: light, the catalog imports it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["WorkflowStepPayload"]


class WorkflowStepPayload(BaseModel):
    """Run step ``step_id`` of workflow run ``run_id``; its input is in the run's rows."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1, max_length=36, description="The workflow run.")
    step_id: str = Field(min_length=1, max_length=64, description="The step of its graph.")
    agent_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The step's agent, whose concurrency limit the step is under; a step "
        "without it runs without waiting for a slot of its agent.",
    )
