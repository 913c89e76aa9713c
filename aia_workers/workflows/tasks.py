"""Celery adapter for ``agents.workflow_step``: one step of a workflow run.

A step runs its agent, so it holds one of the agent's slots while it runs,
or waits parked for one, as an ``agents.run`` does (``AgentRunTask``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from aia_workers.agents.contracts import RunCancelled
from aia_workers.agents.environment import agent_environment
from aia_workers.agents.tasking import AgentRunTask
from aia_workers.agents.types import agent_types
from aia_workers.backbone.catalog import get_task_type
from aia_workers.backbone.observability import describe_failure
from aia_workers.backbone.tasking import aia_task, progress_reporter
from aia_workers.db.session import database_outage_is_transient
from aia_workers.errors import TransientError
from aia_workers.workflows.payloads import WorkflowStepPayload
from aia_workers.workflows.stepping import end_workflow_step, run_workflow_step

__all__ = ["step"]

log = logging.getLogger(__name__)


# The result goes to the result backend too (ignore_result=False): a step in a
# chord's header counts there towards starting the chord's body.
@aia_task(
    get_task_type("agents.workflow_step"),
    base=AgentRunTask,
    throws=(RunCancelled,),
    ignore_result=False,
)
def step(self: Task, payload: dict[str, Any], tenant: str) -> dict[str, Any]:
    parsed = WorkflowStepPayload.model_validate(payload)
    env = agent_environment()
    try:
        with database_outage_is_transient():
            return run_workflow_step(
                env,
                agent_types(),
                tenant,
                parsed,
                task_id=self.request.id,
                report=progress_reporter(self),
            )
    except TransientError as exc:
        if self.request.retries < self.max_retries:
            raise
        _end(env, tenant, parsed, self, "failed", describe_failure(exc, self))
        raise
    except RunCancelled as exc:
        _end(env, tenant, parsed, self, "cancelled", str(exc))
        raise
    except Exception as exc:
        _end(env, tenant, parsed, self, "failed", describe_failure(exc, self))
        raise


def _end(
    env: Any, tenant: str, payload: WorkflowStepPayload, task: Task, status: str, message: str
) -> None:
    try:
        end_workflow_step(
            env, tenant, payload, task_id=task.request.id, status=status, message=message
        )
    except Exception:
        # The task's own failure stands; reading the run reconciles it with its steps.
        log.exception("could not record the end of workflow step %s", payload.step_id)
