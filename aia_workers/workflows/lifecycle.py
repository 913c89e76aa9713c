"""How a workflow run and its steps move between states, in the database.

Plain code, no Celery. Each function works in the caller's transaction and
locks the run's row first, so steps of one run that end at the same moment
are applied one after the other: the last step to succeed sees every other
one succeeded and ends the run.

A step is ``queued`` (its task is recorded, waiting for its upstream steps or
a worker), ``running``, then ``succeeded``, ``failed`` or ``cancelled``. A
run is ``queued`` until its first step starts, ``running``, then
``succeeded`` once every step has, ``failed`` when a step fails, naming it,
or ``cancelled``. When a step fails, the queued steps of later levels of the
canvas are cancelled (they will never be sent; the caller cancels their
tasks' records with the ids these functions return), while those of its own
level, sent beside it, still run: their outputs serve a resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from aia_workers.db.workflows import WorkflowRun, WorkflowRunStep
from aia_workers.errors import ConflictError, NotFoundError, TaskFailure
from aia_workers.workflows.graph import StepSpec, dependencies, levels
from aia_workers.workflows.store import ACTIVE, WorkflowRepository, now

__all__ = [
    "Begun",
    "RunEnded",
    "begin_step",
    "cancel_run",
    "end_step",
    "fail_run",
    "finish_step",
    "prepare_resume",
    "settle",
    "to_resume",
]

_MAX_ERROR = 4000


class RunEnded(TaskFailure):
    """Raised when a step starts in a run that has failed or was cancelled already."""


@dataclass(frozen=True, slots=True)
class Begun:
    """A step about to run: its agent and input; or, when it ran before, its output."""

    agent_id: str
    input: dict[str, Any]
    output: dict[str, Any] | None = None


def _load(
    session: Session, tenant: str, run_id: str, step_id: str
) -> tuple[WorkflowRun, dict[str, WorkflowRunStep], WorkflowRunStep]:
    store = WorkflowRepository(session, tenant)
    run = store.get_run(run_id, lock=True)
    if run is None:
        raise TaskFailure(
            f"workflow run {run_id} does not exist: its workflow was deleted (or it never "
            "was, in this tenant)"
        )
    steps = store.steps(run_id)
    step = steps.get(step_id)
    if step is None:
        raise TaskFailure(f"workflow run {run_id} has no step {step_id!r}")
    return run, steps, step


def _spec(run: WorkflowRun, step_id: str) -> StepSpec:
    for raw in run.steps:
        if raw["id"] == step_id:
            return StepSpec.model_validate(raw)
    raise TaskFailure(f"workflow run {run.id}'s graph has no step {step_id!r}")


def begin_step(session: Session, tenant: str, run_id: str, step_id: str, task_id: str) -> Begun:
    """Mark the step running and give its input: its static input, with each
    ``inputs_from`` field filled with the named step's output.

    A step that succeeded already (its task delivered again) is not run again:
    its stored output comes back instead. TaskFailure when ``task_id`` is not
    the step's task or an upstream step has not succeeded; RunEnded when the
    run is over.
    """
    run, steps, step = _load(session, tenant, run_id, step_id)
    if step.task_id != task_id:
        raise TaskFailure(
            f"task {task_id} is not the task of step {step_id!r} of workflow run {run_id} "
            f"(that is {step.task_id}); workflow steps are started by "
            "POST /v1/workflows/{id}/runs"
        )
    if step.status == "succeeded":
        return Begun(step.agent_id, step.input or {}, output=step.output or {})
    # A step of a failed run still runs if it is queued: it was sent beside the step
    # that failed, and its output serves a resume. Cancelled means stop.
    if step.status not in ACTIVE or run.status == "cancelled":
        raise RunEnded(
            f"workflow run {run_id} is {run.status}; step {step_id!r} is {step.status} "
            "and does not run"
        )
    spec = _spec(run, step_id)
    for dep in dependencies(spec):
        upstream = steps.get(dep)
        if upstream is None or upstream.status != "succeeded":
            state = upstream.status if upstream is not None else "missing"
            raise TaskFailure(
                f"step {step_id!r} started before step {dep!r} succeeded (it is {state})"
            )
    inputs = dict(spec.input)
    for field, source in spec.inputs_from.items():
        inputs[field] = steps[source].output
    stamp = now()
    step.status, step.input, step.error = "running", inputs, None
    step.started_at, step.finished_at = stamp, None
    if run.status == "queued":
        run.status = "running"
    run.updated_at = stamp
    session.flush()
    return Begun(step.agent_id, inputs)


def finish_step(
    session: Session,
    tenant: str,
    run_id: str,
    step_id: str,
    task_id: str,
    output: dict[str, Any],
) -> None:
    """Store the step's output; the run succeeds with its last step."""
    run, steps, step = _load(session, tenant, run_id, step_id)
    if step.task_id != task_id or step.status == "succeeded":
        return
    stamp = now()
    step.status, step.output, step.error, step.finished_at = "succeeded", output, None, stamp
    run.updated_at = stamp
    if run.status in ACTIVE and all(s.status == "succeeded" for s in steps.values()):
        run.status, run.error, run.finished_at = "succeeded", None, stamp
    session.flush()


def end_step(
    session: Session,
    tenant: str,
    run_id: str,
    step_id: str,
    task_id: str,
    *,
    status: str,
    message: str,
) -> list[str]:
    """Record that the step ``failed`` or was ``cancelled`` (``status``) with ``message``;
    the run ends so too, naming the step. The task ids of the steps still queued,
    cancelled with it, come back."""
    if status not in ("failed", "cancelled"):
        raise ValueError(f"a step ends failed or cancelled, not {status!r}")
    try:
        run, steps, step = _load(session, tenant, run_id, step_id)
    except TaskFailure:
        return []
    if step.task_id != task_id or step.status not in ACTIVE:
        return []
    return _end(run, steps, step, status, message)


def _end(
    run: WorkflowRun,
    steps: Mapping[str, WorkflowRunStep],
    step: WorkflowRunStep,
    status: str,
    message: str,
) -> list[str]:
    stamp = now()
    step.status, step.error, step.finished_at = status, message[:_MAX_ERROR], stamp
    run.updated_at = stamp
    if run.status not in ACTIVE:
        return []
    verb = "failed" if status == "failed" else "was cancelled"
    run.status, run.finished_at = status, stamp
    run.error = {"step": step.step_id, "message": f"step {step.step_id!r} {verb}: {message}"}
    # Steps of later levels are never sent now (the canvas stops at a failed step);
    # those of its own level were sent beside it and may still run.
    return _cancel_queued(steps, f"not run: step {step.step_id!r} {verb}", after=step.level)


def _cancel_queued(
    steps: Mapping[str, WorkflowRunStep], reason: str, *, after: int = -1
) -> list[str]:
    stamp = now()
    cancelled = []
    for other in steps.values():
        if other.status == "queued" and other.level > after:
            other.status, other.error, other.finished_at = "cancelled", reason, stamp
            cancelled.append(other.task_id)
    return cancelled


def settle(
    session: Session,
    tenant: str,
    run_id: str,
    tasks: Mapping[str, tuple[str, str | None]],
) -> list[str]:
    """Bring the run up to date with its steps' tasks (``tasks``: step id -> (task status,
    error message)): a step whose task ended failed or cancelled without the step saying
    so (a worker killed, a time limit, a queued task cancelled) ends so now. The task
    ids of the steps still queued, cancelled with the run, come back."""
    store = WorkflowRepository(session, tenant)
    run = store.get_run(run_id, lock=True)
    if run is None:
        return []
    steps = store.steps(run_id)
    cancelled: list[str] = []
    for step_id, (status, message) in tasks.items():
        step = steps.get(step_id)
        if step is None or step.status not in ACTIVE or status not in ("failed", "cancelled"):
            continue
        default = "its task failed" if status == "failed" else "its task was cancelled"
        cancelled += _end(run, steps, step, status, message or default)
    session.flush()
    return cancelled


def cancel_run(session: Session, tenant: str, run_id: str) -> list[str]:
    """Cancel the run: its queued and running steps are cancelled. Their task ids come
    back, for the caller to cancel (a running agent stops at its next checkpoint).
    ConflictError when the run is over; NotFoundError when there is no such run."""
    store = WorkflowRepository(session, tenant)
    run = store.get_run(run_id, lock=True)
    if run is None:
        raise NotFoundError(f"there is no workflow run {run_id}")
    if run.status not in ACTIVE:
        raise ConflictError(f"workflow run {run_id} is {run.status} already")
    steps = store.steps(run_id)
    stamp = now()
    tasks = []
    for step in steps.values():
        if step.status in ACTIVE:
            step.status, step.error, step.finished_at = "cancelled", "cancelled by request", stamp
            tasks.append(step.task_id)
    run.status, run.finished_at, run.updated_at = "cancelled", stamp, stamp
    run.error = {"step": None, "message": "cancelled by request"}
    session.flush()
    return tasks


def fail_run(session: Session, tenant: str, run_id: str, message: str) -> None:
    """End the run failed for ``message`` (no step's fault: its canvas could not be
    sent), with its queued steps cancelled."""
    store = WorkflowRepository(session, tenant)
    run = store.get_run(run_id, lock=True)
    if run is None or run.status not in ACTIVE:
        return
    stamp = now()
    _cancel_queued(store.steps(run_id), message)
    run.status, run.finished_at, run.updated_at = "failed", stamp, stamp
    run.error = {"step": None, "message": message}
    session.flush()


def to_resume(session: Session, tenant: str, run_id: str) -> list[str]:
    """The steps a resume of the run would run again: those that did not succeed.
    ConflictError unless the run is failed or cancelled with no step still running;
    NotFoundError when there is no such run."""
    store = WorkflowRepository(session, tenant)
    run = store.get_run(run_id, lock=True)
    if run is None:
        raise NotFoundError(f"there is no workflow run {run_id}")
    if run.status not in ("failed", "cancelled"):
        raise ConflictError(
            f"workflow run {run_id} is {run.status}; only a failed or cancelled run resumes"
        )
    steps = store.steps(run_id)
    busy = [s.step_id for s in steps.values() if s.status in ACTIVE]
    if busy:
        raise ConflictError(
            f"step(s) {', '.join(busy)} of workflow run {run_id} are still queued or "
            "running; resume once they end"
        )
    return [raw["id"] for raw in run.steps if steps[raw["id"]].status != "succeeded"]


def prepare_resume(
    session: Session, tenant: str, run_id: str, task_ids: Mapping[str, str]
) -> WorkflowRun:
    """Queue again every step of a failed or cancelled run that did not succeed, step
    ``s`` under the new task id ``task_ids[s]``. Steps that succeeded keep their
    outputs and do not run again. ConflictError as ``to_resume``, or when the steps
    to run are not those of ``task_ids`` (another resume came first).
    """
    again = to_resume(session, tenant, run_id)
    if set(again) != set(task_ids):
        raise ConflictError(f"workflow run {run_id} was resumed already")
    store = WorkflowRepository(session, tenant)
    run = store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"there is no workflow run {run_id}")
    steps = store.steps(run_id)
    graph = [StepSpec.model_validate(s) for s in run.steps]
    done = [s for s, row in steps.items() if row.status == "succeeded"]
    level = {step: i for i, names in enumerate(levels(graph, done)) for step in names}
    for step_id in again:
        step = steps[step_id]
        step.level = level[step_id]
        step.status, step.error, step.output, step.input = "queued", None, None, None
        step.started_at = step.finished_at = None
        step.attempt += 1
        step.task_id = task_ids[step_id]
    stamp = now()
    run.status, run.error, run.finished_at, run.updated_at = "queued", None, None, stamp
    if not again:
        # Every step had succeeded (the run was cancelled as its last step ended).
        run.status, run.finished_at = "succeeded", stamp
    run.attempt += 1
    session.flush()
    return run
