"""Response models of the workflow routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from aia_api.http.responses import Closed, PageLinks, SelfLinks

__all__ = [
    "WorkflowPage",
    "WorkflowRunPage",
    "WorkflowRunView",
    "WorkflowStepDetail",
    "WorkflowView",
]


class WorkflowView(Closed):
    id: str
    name: str
    steps: list[dict[str, Any]] = Field(description="The graph, as it was accepted.")
    created_by: str | None
    created_at: datetime
    links: SelfLinks = Field(description="`self` and `runs`.")


class WorkflowPage(Closed):
    items: list[WorkflowView]
    next_cursor: str | None
    links: PageLinks


class RunProgress(Closed):
    done: int = Field(description="Steps succeeded.")
    total: int = Field(description="Steps in the run.")


class RunError(Closed):
    step: str | None = Field(description="The step that failed the run (None: cancelled).")
    message: str


class WorkflowStepView(Closed):
    id: str
    agent_id: str
    status: str = Field(description="queued, running, succeeded, failed or cancelled.")
    task_id: str = Field(description="The `agents.workflow_step` task running it now.")
    attempt: int = Field(description="1, and one more with each resume that runs it again.")
    progress: dict[str, Any] | None = Field(
        description="Its task's last progress (current, total, message), when read live."
    )
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    links: SelfLinks = Field(description="`self` (its input and output), `task`, `events`.")


class WorkflowStepDetail(Closed):
    id: str
    run_id: str
    agent_id: str
    status: str
    task_id: str
    attempt: int
    input: dict[str, Any] | None = Field(description="What its agent got, once it started.")
    output: dict[str, Any] | None = Field(description="Its agent's output, once it succeeded.")
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    links: SelfLinks = Field(description="`self`, `run`, `task`.")


class WorkflowRunView(Closed):
    id: str
    workflow_id: str
    status: str = Field(description="queued, running, succeeded, failed or cancelled.")
    error: RunError | None
    attempt: int = Field(description="1, and one more with each resume.")
    progress: RunProgress
    steps: list[WorkflowStepView] = Field(description="In the order the workflow lists them.")
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    links: SelfLinks = Field(description="`self`, `workflow`, `resume` and `cancel`.")


class WorkflowRunPage(Closed):
    items: list[WorkflowRunView]
    next_cursor: str | None
    links: PageLinks
