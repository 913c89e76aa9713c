"""Response models of the agent routes (shared ones: ``aia_api.http.responses``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from aia_api.http.responses import Closed, PageLinks, SelfLinks

__all__ = [
    "AgentPage",
    "AgentRunPage",
    "AgentRunView",
    "AgentTypeList",
    "AgentTypeView",
    "AgentView",
    "BrokenTypeView",
]


class AgentTypeView(Closed):
    name: str = Field(description="The entry point's name, which agents give as `type`.")
    summary: str
    config_schema: dict[str, Any] = Field(description="JSON Schema of an agent's `config`.")
    input_schema: dict[str, Any] = Field(description="JSON Schema of a run's `input`.")


class BrokenTypeView(Closed):
    name: str = Field(description="The entry point's name.")
    target: str = Field(description="What it points at, `module:attribute`.")
    distribution: str | None = Field(description="The package that declares it.")
    error: str = Field(description="Why it could not be loaded as an agent type.")


class AgentTypeList(Closed):
    items: list[AgentTypeView] = Field(description="The usable types, by name.")
    broken: list[BrokenTypeView] = Field(
        description="Entry points that failed to load or are not agent types; not usable."
    )


class AgentView(Closed):
    id: str
    name: str
    type: str
    config: dict[str, Any] = Field(description="As the type's config model accepted it.")
    description: str | None
    max_concurrency: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    links: SelfLinks = Field(description="`self` and `runs`.")


class AgentPage(Closed):
    items: list[AgentView]
    next_cursor: str | None
    links: PageLinks


class AgentRunView(Closed):
    id: str = Field(description="The run's task id.")
    agent_id: str
    input: dict[str, Any]
    status: str | None = Field(
        description="The task's status now, from its record (None once it is gone)."
    )
    created_by: str | None
    created_at: datetime
    links: SelfLinks = Field(description="`self` (the task) and `events` (its SSE stream).")


class AgentRunPage(Closed):
    items: list[AgentRunView]
    next_cursor: str | None
    links: PageLinks
