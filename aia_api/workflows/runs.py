"""Workflow runs: start one, list a workflow's, read one with its steps, resume, cancel.

A run's steps are ``agents.workflow_step`` tasks, recorded when the run starts
and sent as Celery canvas (``aia_workers.workflows.canvas``). Reading a run
brings it up to date with its steps' tasks first: a step whose task ended
without the step saying so (its worker killed, a time limit, a queued step
cancelled with ``POST /v1/tasks/{id}/cancel``) ends the run then.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.agents.openapi import NEEDS_READ, NEEDS_RUN
from aia_api.http.listing import Page, stored_page
from aia_api.http.openapi import CURSOR, LIMIT, SECURED, Reply, operation
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import Services, services
from aia_api.workflows.launch import end_records, record_steps, send_canvas
from aia_api.workflows.openapi import RUN_ID, STEP_ID, WORKFLOW_ID, WORKFLOWS
from aia_api.workflows.responses import WorkflowRunPage, WorkflowRunView, WorkflowStepDetail
from aia_api.workflows.views import run_view, step_detail
from aia_api.workflows.workflows import load_workflow
from aia_workers.backbone.states import TERMINAL
from aia_workers.db.workflows import WorkflowRun, WorkflowRunStep
from aia_workers.errors import ConflictError, NotFoundError
from aia_workers.workflows.graph import StepSpec
from aia_workers.workflows.lifecycle import cancel_run, fail_run, prepare_resume, settle, to_resume
from aia_workers.workflows.records import StepTask
from aia_workers.workflows.store import ACTIVE, WorkflowRepository

__all__ = ["routes"]

_RUN_REPLY = "The run, with each step's status, task and progress."


def _run_not_found(run_id: str) -> Problem:
    return Problem(
        404,
        "workflow-run-not-found",
        "Workflow run not found",
        f"there is no workflow run {run_id}",
    )


def _load_run(
    svc: Services, tenant: str, run_id: str
) -> tuple[WorkflowRun, dict[str, WorkflowRunStep]]:
    with svc.sessions() as session:
        store = WorkflowRepository(session, tenant)
        run = store.get_run(run_id)
        if run is None:
            raise _run_not_found(run_id)
        return run, store.steps(run_id)


async def _live_view(svc: Services, tenant: str, run_id: str) -> dict[str, Any]:
    """The run as it stands, settled with its steps' tasks when one ended on its own."""
    run, steps = await anyio.to_thread.run_sync(_load_run, svc, tenant, run_id)
    active = [s for s in steps.values() if s.status in ACTIVE]
    views = await asyncio.gather(*(svc.tasks.get(tenant, s.task_id) for s in active))
    tasks = {s.step_id: v for s, v in zip(active, views, strict=True)}
    ended = {
        step_id: (v["status"], (v.get("error") or {}).get("message") or v.get("reason"))
        for step_id, v in tasks.items()
        if v is not None and v["status"] in TERMINAL and v["status"] != "succeeded"
    }
    if ended:

        def record() -> list[str]:
            with svc.sessions.begin() as session:
                return settle(session, tenant, run_id, ended)

        queued = await anyio.to_thread.run_sync(record)
        await end_records(svc, queued, f"workflow run {run_id} ended")
        run, steps = await anyio.to_thread.run_sync(_load_run, svc, tenant, run_id)
    return run_view(run, steps, tasks)


@operation(
    id="startWorkflowRun",
    summary="Start a run of a workflow",
    tag=WORKFLOWS,
    permission=Permission.AGENTS_RUN,
    responses={202: Reply("Queued: " + _RUN_REPLY, WorkflowRunView, headers=("Location",))},
    errors=(*SECURED, "404"),
    description=(
        f"{NEEDS_RUN} Every step is recorded as an `agents.workflow_step` task at once "
        "(each counts against the tenant's in-flight limit: 429 when they do not fit), then "
        "the run goes to the broker as Celery canvas. A step's task reports its agent's "
        "progress on its own event stream; the run counts the steps done. A failed step fails "
        "the run, naming the step, and the steps after it do not run."
    ),
    parameters=(WORKFLOW_ID,),
)
async def start_run(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_RUN)
    svc = services(request)
    workflow_id = request.path_params["workflow_id"]

    def load() -> list[StepSpec]:
        with svc.sessions() as session:
            row = load_workflow(WorkflowRepository(session, principal.tenant), workflow_id)
            return [StepSpec.model_validate(s) for s in row.steps]

    specs = await anyio.to_thread.run_sync(load)
    task_ids = {spec.id: str(uuid.uuid4()) for spec in specs}
    run_id = str(uuid.uuid4())
    await record_steps(
        svc,
        principal.tenant,
        [StepTask(task_ids[s.id], run_id, s.id, s.agent_id) for s in specs],
    )

    def create() -> None:
        with svc.sessions.begin() as session:
            store = WorkflowRepository(session, principal.tenant)
            workflow = load_workflow(store, workflow_id)
            store.create_run(workflow, task_ids, created_by=principal.actor, run_id=run_id)

    try:
        await anyio.to_thread.run_sync(create)
    except BaseException:
        await end_records(svc, list(task_ids.values()), "the workflow run could not start")
        raise
    await _send(svc, principal.tenant, run_id, specs, task_ids)
    view = await _live_view(svc, principal.tenant, run_id)
    return json_reply(view, 202, {"Location": view["links"]["self"]})


async def _send(
    svc: Services,
    tenant: str,
    run_id: str,
    specs: list[StepSpec],
    task_ids: dict[str, str],
    done: list[str] | None = None,
) -> None:
    try:
        await send_canvas(svc, tenant, run_id, specs, task_ids, done or [])
    except Problem as problem:
        detail = problem.detail

        def record() -> None:
            with svc.sessions.begin() as session:
                fail_run(session, tenant, run_id, detail)

        await anyio.to_thread.run_sync(record)
        raise


@operation(
    id="listWorkflowRuns",
    summary="A workflow's runs",
    tag=WORKFLOWS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("Newest first; follow links.next for more.", WorkflowRunPage)},
    errors=(*SECURED, "400", "404", "422"),
    description=(
        f"{NEEDS_READ} Each with its steps' statuses as last recorded (without their tasks' "
        "progress: read a run for that)."
    ),
    parameters=(WORKFLOW_ID, LIMIT, CURSOR),
)
async def list_runs(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)
    workflow_id = request.path_params["workflow_id"]

    def fetch(session: Session, limit: int, cursor: str | None) -> Page[dict[str, Any]]:
        store = WorkflowRepository(session, principal.tenant)
        load_workflow(store, workflow_id)
        rows, next_cursor = store.runs(workflow_id, limit=limit, cursor=cursor)
        return [run_view(row, store.steps(row.id)) for row in rows], next_cursor

    return await stored_page(request, services(request).sessions, fetch)


@operation(
    id="getWorkflowRun",
    summary="A workflow run, with its steps",
    tag=WORKFLOWS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply(_RUN_REPLY, WorkflowRunView)},
    errors=(*SECURED, "404"),
    description=(
        f"{NEEDS_READ} `progress` counts the steps done of all; each step has its status, "
        "its task (`links.task`, `links.events`), that task's last progress, its error, and "
        "`links.self` for its input and output. A failed run's `error` names the step."
    ),
    parameters=(RUN_ID,),
)
async def get_run(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)
    svc = services(request)
    return json_reply(await _live_view(svc, principal.tenant, request.path_params["run_id"]))


@operation(
    id="getWorkflowRunStep",
    summary="One step of a workflow run, with its input and output",
    tag=WORKFLOWS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("The step.", WorkflowStepDetail)},
    errors=(*SECURED, "404"),
    description=(
        f"{NEEDS_READ} `input` is what its agent got (static input and upstream outputs), "
        "`output` what it answered; kept with the run, also after its task's record expires."
    ),
    parameters=(RUN_ID, STEP_ID),
)
async def get_step(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)
    svc = services(request)
    run_id, step_id = request.path_params["run_id"], request.path_params["step_id"]
    _, steps = await anyio.to_thread.run_sync(_load_run, svc, principal.tenant, run_id)
    step = steps.get(step_id)
    if step is None:
        raise Problem(
            404,
            "workflow-step-not-found",
            "Workflow step not found",
            f"workflow run {run_id} has no step {step_id!r}",
        )
    return json_reply(step_detail(step))


@operation(
    id="resumeWorkflowRun",
    summary="Resume a failed workflow run from the steps that did not succeed",
    tag=WORKFLOWS,
    permission=Permission.AGENTS_RUN,
    responses={202: Reply("Queued again: " + _RUN_REPLY, WorkflowRunView)},
    errors=(*SECURED, "404", "409"),
    description=(
        f"{NEEDS_RUN} For a failed or cancelled run: the steps that succeeded keep their "
        "outputs and do not run again; every other step runs again as a new task (its "
        "`attempt` one more), fed by the kept outputs. Fix the cause first (e.g. "
        "`PATCH /v1/agents/{id}`: a step reads its agent's configuration when it starts). "
        "409 `workflow-run-not-resumable` for a run that is queued, running or succeeded, or "
        "has a step still running."
    ),
    parameters=(RUN_ID,),
)
async def resume_run(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_RUN)
    svc = services(request)
    tenant = principal.tenant
    run_id = request.path_params["run_id"]

    def plan() -> tuple[list[StepSpec], list[str], list[str]]:
        with svc.sessions.begin() as session:
            again = _resumable(lambda: to_resume(session, tenant, run_id), run_id)
            run = WorkflowRepository(session, tenant).get_run(run_id)
            specs = [StepSpec.model_validate(s) for s in run.steps] if run else []
            return specs, again, [s.id for s in specs if s.id not in again]

    specs, again, done = await anyio.to_thread.run_sync(plan)
    task_ids = {step_id: str(uuid.uuid4()) for step_id in again}
    agents = {spec.id: spec.agent_id for spec in specs}
    await record_steps(svc, tenant, [StepTask(task_ids[s], run_id, s, agents[s]) for s in again])

    def queue() -> None:
        with svc.sessions.begin() as session:
            _resumable(lambda: prepare_resume(session, tenant, run_id, task_ids), run_id)

    try:
        await anyio.to_thread.run_sync(queue)
    except BaseException:
        await end_records(svc, list(task_ids.values()), "the workflow run was not resumed")
        raise
    if again:
        await _send(svc, tenant, run_id, specs, task_ids, done)
    return json_reply(await _live_view(svc, tenant, run_id), 202)


def _resumable(call: Any, run_id: str) -> Any:
    try:
        return call()
    except NotFoundError:
        raise _run_not_found(run_id) from None
    except ConflictError as exc:
        raise Problem(
            409, "workflow-run-not-resumable", "Workflow run not resumable", str(exc)
        ) from None


@operation(
    id="cancelWorkflowRun",
    summary="Cancel a workflow run",
    tag=WORKFLOWS,
    permission=Permission.AGENTS_RUN,
    responses={
        202: Reply(
            "Cancelled; a running step stops at its next checkpoint: " + _RUN_REPLY,
            WorkflowRunView,
        )
    },
    errors=(*SECURED, "404", "409"),
    description=(
        f"{NEEDS_RUN} The run and its queued and running steps end `cancelled`, and so do "
        "their tasks: a queued step never starts, a running one stops at its agent's next "
        "checkpoint (as `POST /v1/tasks/{id}/cancel` does to a step's task, which also "
        "cancels its run). Steps that succeeded keep their outputs; the run can be resumed. "
        "409 `workflow-run-finished` for a run that ended already."
    ),
    parameters=(RUN_ID,),
)
async def cancel(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_RUN)
    svc = services(request)
    tenant = principal.tenant
    run_id = request.path_params["run_id"]

    def record() -> list[str]:
        with svc.sessions.begin() as session:
            try:
                return cancel_run(session, tenant, run_id)
            except NotFoundError:
                raise _run_not_found(run_id) from None
            except ConflictError as exc:
                raise Problem(
                    409, "workflow-run-finished", "Workflow run finished", str(exc)
                ) from None

    for task_id in await anyio.to_thread.run_sync(record):
        try:
            await svc.tasks.cancel(tenant, task_id)
        except Problem:
            # Ended (or gone) already: nothing left to stop.
            continue
    return json_reply(await _live_view(svc, tenant, run_id), 202)


_RUN = "/v1/workflows/runs/{run_id}"
_RUNS = "/v1/workflows/{workflow_id}/runs"
# Before /v1/workflows/{workflow_id}, which would take /v1/workflows/runs/... otherwise.
routes = [
    Route(_RUN, get_run, methods=["GET"]),
    Route(f"{_RUN}/steps/{{step_id}}", get_step, methods=["GET"]),
    Route(f"{_RUN}/resume", resume_run, methods=["POST"]),
    Route(f"{_RUN}/cancel", cancel, methods=["POST"]),
    Route(_RUNS, start_run, methods=["POST"]),
    Route(_RUNS, list_runs, methods=["GET"]),
]
