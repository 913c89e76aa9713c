"""``/v1/workflows``: create (validated as a graph of the tenant's agents), list, read, delete."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.agents.openapi import NEEDS_MANAGE, NEEDS_READ
from aia_api.http.body import parse_model, read_json
from aia_api.http.listing import Page, stored_page
from aia_api.http.openapi import CURSOR, LIMIT, SECURED, WITH_BODY, Body, Reply, operation
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import services
from aia_api.workflows.openapi import WORKFLOW_ID, WORKFLOWS
from aia_api.workflows.requests import WorkflowRequest
from aia_api.workflows.responses import WorkflowPage, WorkflowView
from aia_api.workflows.views import workflow_view
from aia_workers.agents.contracts import AgentType
from aia_workers.agents.store import AgentRepository
from aia_workers.agents.types import AgentTypes, UnknownAgentTypeError, agent_types
from aia_workers.db.workflows import Workflow
from aia_workers.workflows.graph import GraphIssue, StepSpec, check_graph, check_inputs
from aia_workers.workflows.store import WorkflowNameTakenError, WorkflowRepository

__all__ = ["load_workflow", "routes"]


def load_workflow(store: WorkflowRepository, workflow_id: str) -> Workflow:
    """The tenant's workflow ``workflow_id``, or a 404 Problem (also for other tenants')."""
    row = store.get(workflow_id)
    if row is None:
        raise Problem(
            404, "workflow-not-found", "Workflow not found", f"there is no workflow {workflow_id}"
        )
    return row


def _invalid(issues: list[GraphIssue]) -> Problem:
    errors = [
        {
            "loc": list(issue.loc),
            "pointer": "/" + "/".join(str(p) for p in issue.loc),
            "message": issue.message,
            "type": issue.type,
        }
        for issue in issues
    ]
    return Problem(422, "invalid-workflow", "Invalid workflow", issues[0].message, errors=errors)


def _kinds(
    steps: list[StepSpec], agents: dict[str, str | None], types: AgentTypes
) -> tuple[dict[str, type[AgentType[Any, Any]]], list[GraphIssue]]:
    """Each step's agent type, and an issue for each step whose agent or type is missing."""
    kinds: dict[str, type[AgentType[Any, Any]]] = {}
    issues = []
    for i, step in enumerate(steps):
        type_name = agents.get(step.agent_id)
        where: tuple[str | int, ...] = ("steps", i, "agent_id")
        if type_name is None:
            issues.append(
                GraphIssue(
                    where,
                    f"step {step.id!r}: there is no agent {step.agent_id} in your tenant",
                    "unknown_agent",
                )
            )
            continue
        try:
            kinds[step.id] = types.get(type_name)
        except UnknownAgentTypeError as exc:
            issues.append(GraphIssue(where, f"step {step.id!r}: {exc}", "unknown_type"))
    return kinds, issues


@operation(
    id="createWorkflow",
    summary="Create a workflow: a graph of agent steps",
    tag=WORKFLOWS,
    permission=Permission.AGENTS_MANAGE,
    responses={201: Reply("Created.", WorkflowView, headers=("Location",))},
    errors=(*SECURED, *WITH_BODY, "409"),
    description=(
        f"{NEEDS_MANAGE} Each step runs an agent of the tenant with `input`, after the steps "
        'in `after` and those in `inputs_from` (`{"<input field>": "<step id>"}`: the field '
        "gets that step's whole output). 422 `invalid-workflow`, naming the step and field "
        "(`/steps/2/after/0`), when ids repeat, a step names one the workflow lacks or "
        "itself, the steps form a cycle, an agent is not the tenant's, or a step's input "
        "(its static part, with the fields from upstream taken as present) does not suit "
        "its agent's type. 409 `workflow-name-taken` for a name the tenant uses."
    ),
    body=Body("The workflow.", WorkflowRequest),
)
async def create_workflow(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_MANAGE)
    svc = services(request)
    body = parse_model(WorkflowRequest, await read_json(request, svc.settings.max_body_bytes))
    issues = check_graph(body.steps)
    if issues:
        raise _invalid(issues)
    types = await anyio.to_thread.run_sync(agent_types)

    def store() -> Workflow:
        with svc.sessions.begin() as session:
            agents = AgentRepository(session, principal.tenant)
            found = {}
            for step in body.steps:
                agent = agents.get(step.agent_id)
                found[step.agent_id] = agent.type if agent is not None else None
            kinds, problems = _kinds(body.steps, found, types)
            problems += check_inputs(body.steps, kinds)
            if problems:
                raise _invalid(problems)
            try:
                return WorkflowRepository(session, principal.tenant).create(
                    name=body.name,
                    steps=[s.model_dump(mode="json") for s in body.steps],
                    created_by=principal.actor,
                )
            except WorkflowNameTakenError as exc:
                raise Problem(
                    409,
                    "workflow-name-taken",
                    "Workflow name taken",
                    str(exc),
                    errors=[
                        {
                            "loc": ["name"],
                            "pointer": "/name",
                            "message": "already taken",
                            "type": "unique",
                        }
                    ],
                ) from None

    view = workflow_view(await anyio.to_thread.run_sync(store))
    return json_reply(view, 201, {"Location": view["links"]["self"]})


@operation(
    id="listWorkflows",
    summary="List workflows",
    tag=WORKFLOWS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("Newest first; follow links.next for more.", WorkflowPage)},
    errors=(*SECURED, "400", "422"),
    description=f"{NEEDS_READ} 400 for a cursor this API did not make.",
    parameters=(LIMIT, CURSOR),
)
async def list_workflows(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)

    def fetch(session: Session, limit: int, cursor: str | None) -> Page[Workflow]:
        return WorkflowRepository(session, principal.tenant).list(limit=limit, cursor=cursor)

    return await stored_page(request, services(request).sessions, fetch, workflow_view)


@operation(
    id="getWorkflow",
    summary="A workflow",
    tag=WORKFLOWS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("The workflow.", WorkflowView)},
    errors=(*SECURED, "404"),
    description=f"{NEEDS_READ} Another tenant's workflow is a 404 too.",
    parameters=(WORKFLOW_ID,),
)
async def get_workflow(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)
    svc = services(request)
    workflow_id = request.path_params["workflow_id"]

    def load() -> dict[str, Any]:
        with svc.sessions() as session:
            store = WorkflowRepository(session, principal.tenant)
            return workflow_view(load_workflow(store, workflow_id))

    return json_reply(await anyio.to_thread.run_sync(load))


@operation(
    id="deleteWorkflow",
    summary="Delete a workflow and its runs",
    tag=WORKFLOWS,
    permission=Permission.AGENTS_MANAGE,
    responses={204: Reply("Deleted, with its runs; their steps' tasks are kept.")},
    errors=(*SECURED, "404", "409"),
    description=(
        f"{NEEDS_MANAGE} 409 `workflow-running` while a run of it is queued or running: "
        "cancel it first (`POST /v1/workflows/runs/{run_id}/cancel`)."
    ),
    parameters=(WORKFLOW_ID,),
)
async def delete_workflow(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_MANAGE)
    svc = services(request)
    workflow_id = request.path_params["workflow_id"]

    def remove() -> None:
        with svc.sessions.begin() as session:
            store = WorkflowRepository(session, principal.tenant)
            row = load_workflow(store, workflow_id)
            active = store.active_runs(row.id)
            if active:
                raise Problem(
                    409,
                    "workflow-running",
                    "Workflow running",
                    f"workflow {workflow_id} has {active} run(s) queued or running; cancel "
                    "them first",
                )
            store.delete(row)

    await anyio.to_thread.run_sync(remove)
    return Response(status_code=204)


_ONE = "/v1/workflows/{workflow_id}"
routes = [
    Route("/v1/workflows", create_workflow, methods=["POST"]),
    Route("/v1/workflows", list_workflows, methods=["GET"]),
    Route(_ONE, get_workflow, methods=["GET"]),
    Route(_ONE, delete_workflow, methods=["DELETE"]),
]
