"""Celery adapters for the ``agents`` task types."""

from __future__ import annotations

from typing import Any

from celery import Task

from aia_workers.agents.contracts import RunCancelled
from aia_workers.agents.environment import agent_environment
from aia_workers.agents.payloads import AgentRunPayload
from aia_workers.agents.running import run_agent
from aia_workers.agents.tasking import AgentRunTask
from aia_workers.agents.types import agent_types
from aia_workers.backbone.catalog import get_task_type
from aia_workers.backbone.tasking import aia_task, progress_reporter
from aia_workers.db.session import database_outage_is_transient

__all__ = ["run"]


# RunCancelled is how a cancelled run ends: expected, so logged without a
# traceback. Its failure is not recorded either: the task's record is
# cancelled already, and a terminal record takes no other outcome. A run
# holds a slot of its agent while it runs (AgentRunTask: max_concurrency).
@aia_task(get_task_type("agents.run"), base=AgentRunTask, throws=(RunCancelled,))
def run(self: Task, payload: dict[str, Any], tenant: str) -> dict[str, Any]:
    with database_outage_is_transient():
        return run_agent(
            agent_environment(),
            agent_types(),
            tenant,
            AgentRunPayload.model_validate(payload),
            run_id=self.request.id,
            report=progress_reporter(self),
        )
