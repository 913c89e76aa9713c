"""Starting a run's steps from the API: record each step's task, then send the canvas.

The records come first, so that every step is a task the tenant can see (and
that counts against its in-flight limit) before any of them can start; the
canvas is sent last, once the run's rows exist for its steps to read. Sending
blocks on the broker (kombu), so it runs on a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio.to_thread

from aia_api.http.problems import Problem
from aia_api.services import Services
from aia_workers.backbone.scripts import SUBMIT_LUA, TRANSITION_LUA
from aia_workers.workflows.canvas import build_canvas, step_signature
from aia_workers.workflows.graph import StepSpec, levels
from aia_workers.workflows.records import StepTask, cancel_calls, record_calls

__all__ = ["end_records", "record_steps", "send_canvas"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def end_records(
    svc: Services, task_ids: Sequence[str], reason: str, *, failed: bool = False
) -> None:
    """End the tasks' records ``cancelled`` (or ``failed``) for ``reason``."""
    script = svc.redis.register_script(TRANSITION_LUA)
    for call in cancel_calls(svc.settings, task_ids, reason, failed=failed):
        keys, args = call.keys_and_args()
        await script(keys=keys, args=args)


async def record_steps(svc: Services, tenant: str, tasks: Sequence[StepTask]) -> None:
    """Record each step's task as queued; a 429 Problem, with none left recorded, when
    the tenant has too many tasks in flight to take them all."""
    script = svc.redis.register_script(SUBMIT_LUA)
    recorded: list[str] = []
    for call in record_calls(svc.settings, tenant, tasks):
        keys, args = call.keys_and_args()
        kind, ident = (_text(v) for v in await script(keys=keys, args=args))
        if kind == "created":
            recorded.append(call.task_id)
            continue
        await end_records(svc, recorded, "the workflow run could not start")
        if kind == "busy":
            raise Problem(
                429,
                "too-many-tasks-in-flight",
                "Too many tasks in flight",
                f"your tenant has {ident} tasks queued or running, too many to add this "
                f"run's {len(tasks)} steps ({svc.settings.tenant_max_inflight} at most); "
                "wait for some to finish",
                headers={"Retry-After": str(svc.settings.retry_after_seconds)},
            )
        raise ValueError(f"unexpected reply from the submit script: {kind!r}")


async def send_canvas(
    svc: Services,
    tenant: str,
    run_id: str,
    specs: Sequence[StepSpec],
    task_ids: Mapping[str, str],
    done: Sequence[str] = (),
) -> None:
    """Send the canvas of the steps not in ``done``; a 503 Problem when the broker refuses,
    with the steps' records failed."""
    agents = {spec.id: spec.agent_id for spec in specs}
    canvas = build_canvas(
        levels(specs, done),
        lambda step: step_signature(svc.celery, tenant, run_id, step, task_ids[step], agents[step]),
    )
    try:
        await anyio.to_thread.run_sync(lambda: canvas.apply_async(retry=False))
    except Exception as exc:
        reason = f"the broker refused the workflow run's canvas: {exc}"
        await end_records(svc, list(task_ids.values()), reason, failed=True)
        raise Problem(
            503,
            "broker-unavailable",
            "Broker unavailable",
            "the workflow run could not be handed to the broker; its steps were marked "
            "failed. Resume it or start another.",
            headers={"Retry-After": str(svc.settings.retry_after_seconds)},
            run_id=run_id,
        ) from exc
