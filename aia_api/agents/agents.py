"""``/v1/agents``: create, list, read, change and delete a tenant's agents."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.agents.checks import check_config, check_type
from aia_api.agents.limits import apply_limit, store_limit
from aia_api.agents.openapi import AGENT_ID, AGENTS, NEEDS_MANAGE, NEEDS_READ
from aia_api.agents.requests import AgentPatch, AgentRequest
from aia_api.agents.responses import AgentPage, AgentView
from aia_api.agents.retirement import retire_agent
from aia_api.agents.views import agent_view
from aia_api.http.body import parse_model, read_json
from aia_api.http.listing import Page, stored_page
from aia_api.http.openapi import CURSOR, LIMIT, SECURED, WITH_BODY, Body, Reply, operation
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import services
from aia_api.webhooks.audit import changes, record_change
from aia_workers.agents.store import AgentNameTakenError, AgentRepository
from aia_workers.agents.types import agent_types
from aia_workers.db.agents import Agent

__all__ = ["load_agent", "routes"]


def load_agent(store: AgentRepository, agent_id: str) -> Agent:
    """The tenant's agent ``agent_id``, or a 404 Problem (also for other tenants' agents)."""
    agent = store.get(agent_id)
    if agent is None:
        raise Problem(404, "agent-not-found", "Agent not found", f"there is no agent {agent_id}")
    return agent


def _name_taken(exc: AgentNameTakenError) -> Problem:
    return Problem(
        409,
        "agent-name-taken",
        "Agent name taken",
        str(exc),
        errors=[
            {"loc": ["name"], "pointer": "/name", "message": "already taken", "type": "unique"}
        ],
    )


def _snapshot(row: Agent) -> dict[str, Any]:
    """The audited fields of ``row`` as they are now."""
    return {
        "name": row.name,
        "type": row.type,
        "config": row.config,
        "description": row.description,
        "max_concurrency": row.max_concurrency,
    }


@operation(
    id="createAgent",
    summary="Create an agent: a named, configured instance of an agent type",
    tag=AGENTS,
    permission=Permission.AGENTS_MANAGE,
    responses={201: Reply("Created.", AgentView, headers=("Location",))},
    errors=(*SECURED, *WITH_BODY, "409"),
    description=(
        f"{NEEDS_MANAGE} `config` is checked against the type's config schema: 422 naming "
        "the field (`/config/...`); an unknown type is a 422 naming `/type`. 409 "
        "`agent-name-taken` for a name the tenant uses. Audited as `agent.create`."
    ),
    body=Body("The agent.", AgentRequest),
)
async def create_agent(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_MANAGE)
    svc = services(request)
    body = parse_model(AgentRequest, await read_json(request, svc.settings.max_body_bytes))
    kind = check_type(await anyio.to_thread.run_sync(agent_types), body.type)
    config = check_config(kind, body.config)

    def store() -> Agent:
        with svc.sessions.begin() as session:
            try:
                row = AgentRepository(session, principal.tenant).create(
                    name=body.name,
                    type_name=kind.name,
                    config=config,
                    description=body.description,
                    max_concurrency=body.max_concurrency,
                    created_by=principal.actor,
                )
            except AgentNameTakenError as exc:
                raise _name_taken(exc) from None
            record_change(
                session,
                request,
                "agent.create",
                tenant=principal.tenant,
                actor=principal.actor,
                detail={"agent_id": row.id, **_snapshot(row)},
            )
            return row

    view = agent_view(await anyio.to_thread.run_sync(store))
    await store_limit(svc, principal.tenant, view["id"], view["max_concurrency"])
    return json_reply(view, 201, {"Location": view["links"]["self"]})


@operation(
    id="listAgents",
    summary="List agents",
    tag=AGENTS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("Newest first; follow links.next for more.", AgentPage)},
    errors=(*SECURED, "400", "422"),
    description=f"{NEEDS_READ} 400 for a cursor this API did not make.",
    parameters=(LIMIT, CURSOR),
)
async def list_agents(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)

    def fetch(session: Session, limit: int, cursor: str | None) -> Page[Agent]:
        return AgentRepository(session, principal.tenant).list(limit=limit, cursor=cursor)

    return await stored_page(request, services(request).sessions, fetch, agent_view)


@operation(
    id="getAgent",
    summary="An agent",
    tag=AGENTS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("The agent.", AgentView)},
    errors=(*SECURED, "404"),
    description=f"{NEEDS_READ} Another tenant's agent is a 404 too.",
    parameters=(AGENT_ID,),
)
async def get_agent(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)
    svc = services(request)
    agent_id = request.path_params["agent_id"]

    def load() -> dict[str, Any]:
        with svc.sessions() as session:
            return agent_view(load_agent(AgentRepository(session, principal.tenant), agent_id))

    return json_reply(await anyio.to_thread.run_sync(load))


@operation(
    id="updateAgent",
    summary="Change an agent: name, description, config, max_concurrency",
    tag=AGENTS,
    permission=Permission.AGENTS_MANAGE,
    responses={200: Reply("Changed.", AgentView)},
    errors=(*SECURED, *WITH_BODY, "404", "409"),
    description=(
        f"{NEEDS_MANAGE} A new `config` replaces the old one whole and is checked against "
        "the type's config schema (422 naming the field); runs already started keep the "
        "configuration they started with. A higher `max_concurrency` starts waiting runs at "
        "once; a lower one takes effect as running runs end. 409 `agent-name-taken` for a "
        "name the tenant uses. "
        "Audited as `agent.update`, with each changed field."
    ),
    parameters=(AGENT_ID,),
    body=Body("The fields to change.", AgentPatch),
)
async def update_agent(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_MANAGE)
    svc = services(request)
    body = parse_model(AgentPatch, await read_json(request, svc.settings.max_body_bytes))
    given = body.model_fields_set
    agent_id = request.path_params["agent_id"]
    types = await anyio.to_thread.run_sync(agent_types)

    def change() -> Agent:
        with svc.sessions.begin() as session:
            store = AgentRepository(session, principal.tenant)
            row = load_agent(store, agent_id)
            config = None
            if body.config is not None:
                config = check_config(check_type(types, row.type, "config"), body.config)
            before = _snapshot(row)
            try:
                store.update(
                    row,
                    name=body.name,
                    description=body.description,
                    clear_description="description" in given and body.description is None,
                    config=config,
                    max_concurrency=body.max_concurrency,
                )
            except AgentNameTakenError as exc:
                raise _name_taken(exc) from None
            record_change(
                session,
                request,
                "agent.update",
                tenant=principal.tenant,
                actor=principal.actor,
                detail={"agent_id": row.id, "changes": changes(before, _snapshot(row))},
            )
            return row

    row = await anyio.to_thread.run_sync(change)
    if body.max_concurrency is not None:
        await apply_limit(svc, principal.tenant, row.id, row.max_concurrency)
    return json_reply(agent_view(row))


@operation(
    id="deleteAgent",
    summary="Delete an agent",
    tag=AGENTS,
    permission=Permission.AGENTS_MANAGE,
    responses={204: Reply("Deleted; its runs' tasks are kept.")},
    errors=(*SECURED, "404"),
    description=(
        f"{NEEDS_MANAGE} A run of it still queued then fails, saying the agent is gone; "
        "a running one finishes. Audited as `agent.delete`."
    ),
    parameters=(AGENT_ID,),
)
async def delete_agent(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_MANAGE)
    svc = services(request)
    agent_id = request.path_params["agent_id"]

    def remove() -> None:
        with svc.sessions.begin() as session:
            store = AgentRepository(session, principal.tenant)
            row = load_agent(store, agent_id)
            gone = _snapshot(row)
            store.delete(row)
            record_change(
                session,
                request,
                "agent.delete",
                tenant=principal.tenant,
                actor=principal.actor,
                detail={"agent_id": agent_id, **gone},
            )

    await anyio.to_thread.run_sync(remove)
    await retire_agent(svc, principal.tenant, agent_id)
    return Response(status_code=204)


_ONE = "/v1/agents/{agent_id}"
routes = [
    Route("/v1/agents", create_agent, methods=["POST"]),
    Route("/v1/agents", list_agents, methods=["GET"]),
    Route(_ONE, get_agent, methods=["GET"]),
    Route(_ONE, update_agent, methods=["PATCH"]),
    Route(_ONE, delete_agent, methods=["DELETE"]),
]
