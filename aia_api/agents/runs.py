"""``/v1/agents/{agent_id}/runs``: start a run of an agent, and list its runs.

A run is an ``agents.run`` task: submitted like any other (the tenant's
in-flight cap, idempotency keys, role bounds), followed on the task's event
stream and cancelled with ``POST /v1/tasks/{id}/cancel``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.agents.agents import load_agent
from aia_api.agents.checks import check_input, check_type
from aia_api.agents.openapi import AGENT_ID, AGENTS, NEEDS_READ, NEEDS_RUN
from aia_api.agents.requests import AgentRunRequest
from aia_api.agents.responses import AgentRunPage
from aia_api.agents.views import run_view
from aia_api.http.body import parse_model, read_json
from aia_api.http.openapi import CURSOR, LIMIT, SECURED, WITH_BODY, Body, Reply, operation
from aia_api.http.params import page_limit
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply, page_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import Services, services
from aia_api.tasks.openapi import IDEMPOTENCY_KEY
from aia_api.tasks.responses import TaskView
from aia_workers.agents.store import AgentRepository
from aia_workers.agents.types import agent_types
from aia_workers.db.agents import AgentRun

__all__ = ["routes"]


@operation(
    id="runAgent",
    summary="Start a run of an agent",
    tag=AGENTS,
    permission=Permission.AGENTS_RUN,
    responses={
        202: Reply(
            "Queued as an `agents.run` task; its result is the agent's output.",
            TaskView,
            headers=("Location",),
        )
    },
    errors=(*SECURED, *WITH_BODY, "404", "409"),
    description=(
        f"{NEEDS_RUN} `input` is checked against the agent type's input schema: 422 naming "
        "the field (`/input/...`). The run reports progress on the task's event stream "
        "(`links.events`); `POST /v1/tasks/{id}/cancel` (needs `tasks:cancel`) stops it at its "
        "next checkpoint and it ends `cancelled`. An agent deleted before its run starts "
        "fails the run, saying so."
    ),
    parameters=(AGENT_ID, IDEMPOTENCY_KEY),
    body=Body("The run's input.", AgentRunRequest),
)
async def run_agent(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_RUN)
    svc = services(request)
    body = parse_model(AgentRunRequest, await read_json(request, svc.settings.max_body_bytes))
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 255:
        raise Problem(
            400,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            "the Idempotency-Key header must be 1 to 255 characters",
        )
    agent_id = request.path_params["agent_id"]
    types = await anyio.to_thread.run_sync(agent_types)

    def find_type() -> str:
        with svc.sessions() as session:
            return load_agent(AgentRepository(session, principal.tenant), agent_id).type

    type_name = await anyio.to_thread.run_sync(find_type)
    check_input(check_type(types, type_name), body.input)
    payload = {"agent_id": agent_id, "input": body.input}
    submitted = await svc.tasks.submit(principal, {"type": "agents.run", "payload": payload}, key)
    view = submitted.view
    headers = {"Location": view["links"]["self"]}
    if submitted.created:
        svc.metrics.submitted.labels("agents.run", view["queue"]).inc()
    else:
        headers["Idempotent-Replayed"] = "true"

    def record() -> None:
        with svc.sessions.begin() as session:
            AgentRepository(session, principal.tenant).record_run(
                view["id"], agent_id, body.input, created_by=principal.actor
            )

    # The worker records the run too when it starts, should this write be lost.
    await anyio.to_thread.run_sync(record)
    return json_reply(view, 202, headers)


async def _views(svc: Services, tenant: str, rows: list[AgentRun]) -> list[dict[str, Any]]:
    """Each run's view, with its status read from its task's record."""
    tasks = await asyncio.gather(*(svc.tasks.get(tenant, row.id) for row in rows))
    return [run_view(row, task) for row, task in zip(rows, tasks, strict=True)]


@operation(
    id="listAgentRuns",
    summary="An agent's runs",
    tag=AGENTS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("Newest first; follow links.next for more.", AgentRunPage)},
    errors=(*SECURED, "400", "404", "422"),
    description=f"{NEEDS_READ} Each with its task's status now; the task has the rest.",
    parameters=(AGENT_ID, LIMIT, CURSOR),
)
async def list_runs(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)
    svc = services(request)
    agent_id = request.path_params["agent_id"]
    limit = page_limit(request.query_params)
    cursor = request.query_params.get("cursor") or None

    def load() -> tuple[list[AgentRun], str | None]:
        with svc.sessions() as session:
            store = AgentRepository(session, principal.tenant)
            load_agent(store, agent_id)
            return store.runs(agent_id, limit=limit, cursor=cursor)

    rows, next_cursor = await anyio.to_thread.run_sync(load)
    return page_reply(request, await _views(svc, principal.tenant, rows), next_cursor)


_RUNS = "/v1/agents/{agent_id}/runs"
routes = [
    Route(_RUNS, run_agent, methods=["POST"]),
    Route(_RUNS, list_runs, methods=["GET"]),
]
