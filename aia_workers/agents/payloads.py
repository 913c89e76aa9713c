"""Payload schemas of the agents task types: light, the API validates submits with them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AgentRunPayload"]


class AgentRunPayload(BaseModel):
    """Run one agent with ``input``, which its type's ``input_model`` validates."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=64, description="The agent to run.")
    input: dict[str, Any] = Field(
        default_factory=dict,
        description="The run's input, as the agent type's input schema "
        "(GET /v1/agents/types) describes it.",
    )
