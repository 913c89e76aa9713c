"""The agent routes' tag and parameters."""

from __future__ import annotations

from aia_api.http.openapi import Tag, path_param

__all__ = ["AGENTS", "AGENT_ID", "NEEDS_MANAGE", "NEEDS_READ", "NEEDS_RUN"]

AGENTS = Tag(
    "agents",
    "Agent types are plugins (Python entry points of the group `aia.agents`); an agent is a "
    "named, configured instance of a type in a tenant, and each run of it is an `agents.run` "
    "task: follow it with the task's events, cancel it with `POST /v1/tasks/{id}/cancel` "
    "(it stops at its next checkpoint and ends `cancelled`). Corpora are the document "
    "collections research agents search.",
)
NEEDS_READ = "Needs `agents:read`."
NEEDS_RUN = "Needs `agents:run`."
NEEDS_MANAGE = "Needs `agents:manage`."
AGENT_ID = path_param("AgentId", "agent_id", "The agent's id.")
