"""Request models of the workflow routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from aia_workers.workflows.graph import MAX_STEPS, StepSpec

__all__ = ["WorkflowRequest"]


class WorkflowRequest(BaseModel):
    """A new workflow: a name unique in the tenant and its steps."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Unique in the tenant.")
    steps: list[StepSpec] = Field(
        min_length=1,
        max_length=MAX_STEPS,
        description="The graph: ids unique, every step named exists, no cycle.",
    )
