"""One step of a workflow run, as its task runs it: plain code, no Celery.

The step's rows say what to do: a step that succeeded before (its task
delivered again, at least once) answers its stored output and does not run
its agent again; otherwise its input is built from its static input and its
upstream steps' outputs, its agent runs (``run_agent``: an agent run like any
other, listed among the agent's runs under the step's task id), and the
output is stored for the steps after it, and for a resume.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from aia_workers.agents.contracts import AgentEnvironment
from aia_workers.agents.payloads import AgentRunPayload
from aia_workers.agents.running import run_agent
from aia_workers.agents.types import AgentTypes
from aia_workers.backbone.progress import ProgressReporter
from aia_workers.backbone.scripts import TRANSITION_LUA
from aia_workers.workflows.lifecycle import begin_step, end_step, finish_step
from aia_workers.workflows.payloads import WorkflowStepPayload
from aia_workers.workflows.records import cancel_calls

__all__ = ["end_workflow_step", "run_workflow_step"]

log = logging.getLogger(__name__)


def run_workflow_step(
    env: AgentEnvironment,
    types: AgentTypes,
    tenant: str,
    payload: WorkflowStepPayload,
    *,
    task_id: str,
    report: ProgressReporter,
) -> dict[str, Any]:
    """Run the step ``payload`` names as task ``task_id``; its output (a JSON object).

    TaskFailure when the run or step is gone, the task is not the step's, or the
    agent cannot run (as ``run_agent``); RunCancelled when the run is cancelled.
    """
    with env.sessions.begin() as session:
        begun = begin_step(session, tenant, payload.run_id, payload.step_id, task_id)
    if begun.output is not None:
        log.info(
            "step %s of workflow run %s succeeded before; its output is reused",
            payload.step_id,
            payload.run_id,
        )
        return begun.output
    output = run_agent(
        env,
        types,
        tenant,
        AgentRunPayload(agent_id=begun.agent_id, input=begun.input),
        run_id=task_id,
        report=report,
    )
    with env.sessions.begin() as session:
        finish_step(session, tenant, payload.run_id, payload.step_id, task_id, output)
    return output


def end_workflow_step(
    env: AgentEnvironment,
    tenant: str,
    payload: WorkflowStepPayload,
    *,
    task_id: str,
    status: str,
    message: str,
) -> None:
    """Record that the step ``failed`` or was ``cancelled``, ending its run so; the
    steps still queued are cancelled, their tasks' records too."""
    with env.sessions.begin() as session:
        queued = end_step(
            session,
            tenant,
            payload.run_id,
            payload.step_id,
            task_id,
            status=status,
            message=message,
        )
    if not queued:
        return
    verb = "failed" if status == "failed" else "was cancelled"
    reason = f"workflow run {payload.run_id} ended: step {payload.step_id!r} {verb}"
    script = env.redis.register_script(TRANSITION_LUA)
    for call in cancel_calls(env.settings, queued, reason):
        keys, args = call.keys_and_args()
        try:
            script(keys=keys, args=args)
        except redis.RedisError:
            # The step rows say cancelled; a record left queued is skipped when its
            # message comes (if it ever does: the canvas stops at the failed step).
            log.warning("could not cancel the record of task %s", call.task_id, exc_info=True)
