"""Request models of the agent routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AgentPatch", "AgentRequest", "AgentRunRequest"]

MAX_CONCURRENCY = 1000
_CONFIG = "Checked against the type's config schema (GET /v1/agents/types)."
_CONCURRENCY = (
    "The most runs of this agent at once, its workflow steps included (held across workers)."
)


class AgentRequest(BaseModel):
    """A new agent: a name unique in the tenant, its type and the type's configuration."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Unique in the tenant.")
    type: str = Field(min_length=1, max_length=100, description="An agent type's name.")
    config: dict[str, Any] = Field(default_factory=dict, description=_CONFIG)
    description: str | None = Field(default=None, max_length=2000)
    max_concurrency: int = Field(default=1, ge=1, le=MAX_CONCURRENCY, description=_CONCURRENCY)


class AgentPatch(BaseModel):
    """Change an agent; fields left out stay. ``config`` replaces the whole configuration."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000, description="null clears it.")
    config: dict[str, Any] | None = Field(default=None, description=_CONFIG)
    max_concurrency: int | None = Field(
        default=None, ge=1, le=MAX_CONCURRENCY, description=_CONCURRENCY
    )


class AgentRunRequest(BaseModel):
    """A run's input, checked against the agent type's input schema."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(
        default_factory=dict, description="As the type's input schema (GET /v1/agents/types)."
    )
