"""The step tasks' live records in Redis: made before the canvas is sent, cancelled with it.

Every step of a run is recorded as a task when the run starts (or resumes),
queued, with no broker message: Celery sends each message when the steps
before it are done. So each step is visible in ``/v1/tasks`` from the start
and counts against the tenant's in-flight limit, and a step cancelled while
it waits is skipped when its message arrives (a terminal record is never
started).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aia_workers.backbone.catalog import get_task_type
from aia_workers.backbone.events import StreamLimits, dumps, submit_call, transition_call
from aia_workers.backbone.scripts import SubmitCall, TransitionCall
from aia_workers.backbone.states import Event
from aia_workers.settings import Settings

__all__ = ["STEP_TYPE", "StepTask", "cancel_calls", "record_calls", "step_kwargs"]

STEP_TYPE = "agents.workflow_step"


@dataclass(frozen=True, slots=True)
class StepTask:
    """One step's task: its id, the run and step it runs, and the step's agent."""

    task_id: str
    run_id: str
    step_id: str
    agent_id: str


def step_kwargs(tenant: str, run_id: str, step_id: str, agent_id: str) -> dict[str, Any]:
    """The keyword arguments of a step's task message.

    The agent is named in the message, so that the worker can hold the step
    to its agent's concurrency limit without reading the run's rows first.
    """
    payload = {"run_id": run_id, "step_id": step_id, "agent_id": agent_id}
    return {"payload": payload, "tenant": tenant}


def record_calls(settings: Settings, tenant: str, tasks: Iterable[StepTask]) -> list[SubmitCall]:
    """The SUBMIT_LUA calls that record each task queued, with no message pushed."""
    task_type = get_task_type(STEP_TYPE)
    limits = StreamLimits.from_settings(settings)
    stamp = time.time()
    calls = []
    for task in tasks:
        payload = step_kwargs(tenant, task.run_id, task.step_id, task.agent_id)["payload"]
        calls.append(
            submit_call(
                task_id=task.task_id,
                tenant=tenant,
                type_name=task_type.name,
                queue=task_type.queue.value,
                now=stamp,
                limits=limits,
                payload_json=dumps(payload),
                fingerprint=hashlib.sha256(
                    dumps([task_type.name, payload, task.task_id]).encode()
                ).hexdigest(),
                idempotency_key=None,
                broker_key="",
                broker_message="",
                priority=None,
                eta=None,
                max_inflight=settings.tenant_max_inflight,
            )
        )
    return calls


def cancel_calls(
    settings: Settings, task_ids: Iterable[str], reason: str, *, failed: bool = False
) -> list[TransitionCall]:
    """The TRANSITION_LUA calls that end each task ``cancelled`` (or ``failed``) for
    ``reason``; a task that ended already is left as it is."""
    limits = StreamLimits.from_settings(settings)
    stamp = time.time()
    calls = []
    for task_id in task_ids:
        if failed:
            error = {"type": "WorkflowError", "message": reason}
            calls.append(
                transition_call(
                    task_id=task_id,
                    event=Event.FAILED,
                    now=stamp,
                    limits=limits,
                    data={"error": error},
                    fields={"error": dumps(error)},
                )
            )
        else:
            calls.append(
                transition_call(
                    task_id=task_id,
                    event=Event.CANCELLED,
                    now=stamp,
                    limits=limits,
                    data={"reason": reason},
                )
            )
    return calls
