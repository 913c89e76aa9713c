"""``GET /v1/agents/types``: the agent types installed, with their schemas."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.agents.openapi import AGENTS, NEEDS_READ
from aia_api.agents.responses import AgentTypeList
from aia_api.agents.views import types_view
from aia_api.http.openapi import SECURED, Reply, operation
from aia_api.http.replies import json_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_workers.agents.types import agent_types

__all__ = ["routes"]


@operation(
    id="listAgentTypes",
    summary="Agent types, with their config and input schemas",
    tag=AGENTS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("The usable types, and the broken plugins apart.", AgentTypeList)},
    errors=SECURED,
    description=(
        f"{NEEDS_READ} Every entry point of the group `aia.agents` installed with the API, "
        "loaded once per process. One that fails to import, is not an `AgentType` or whose "
        "class names itself otherwise is listed under `broken` with the reason, and cannot be "
        "used. The workers of the `agents` queue must have the same packages installed."
    ),
)
async def list_agent_types(request: Request) -> Response:
    require(request, Permission.AGENTS_READ)
    # The first call imports the plugins: off the event loop.
    types = await anyio.to_thread.run_sync(agent_types)
    return json_reply(types_view(types))


routes = [Route("/v1/agents/types", list_agent_types, methods=["GET"])]
