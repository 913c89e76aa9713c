"""JSON views of agents, their runs and the agent types."""

from __future__ import annotations

from typing import Any

from aia_workers.agents.types import AgentTypes
from aia_workers.db.agents import Agent, AgentRun

__all__ = ["agent_view", "run_view", "types_view"]


def agent_view(row: Agent) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "type": row.type,
        "config": row.config,
        "description": row.description,
        "max_concurrency": row.max_concurrency,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "links": {"self": f"/v1/agents/{row.id}", "runs": f"/v1/agents/{row.id}/runs"},
    }


def run_view(row: AgentRun, task: dict[str, Any] | None) -> dict[str, Any]:
    """``row``; ``task`` is its task's view, if the task is still known."""
    return {
        "id": row.id,
        "agent_id": row.agent_id,
        "input": row.input,
        "status": task.get("status") if task else None,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "links": {"self": f"/v1/tasks/{row.id}", "events": f"/v1/tasks/{row.id}/events"},
    }


def types_view(types: AgentTypes) -> dict[str, Any]:
    return {
        "items": [
            {
                "name": name,
                "summary": kind.summary,
                "config_schema": types.schemas[name]["config"],
                "input_schema": types.schemas[name]["input"],
            }
            for name, kind in sorted(types.types.items())
        ],
        "broken": [
            {
                "name": b.name,
                "target": b.target,
                "distribution": b.distribution,
                "error": b.error,
            }
            for b in types.broken
        ],
    }
