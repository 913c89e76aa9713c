"""``GET /v1/agents/{agent_id}/messages/events``: follow an agent's mailbox over SSE.

As with a task's events, the stream subscribes first (the mailbox's Redis
channel, through the process's hub), then sends what the client missed, here
from the database (messages past Last-Event-ID, a mailbox ``position``), then
follows live, dropping what it sent already. Positions are given in commit
order (posting locks the recipient), so an announcement that arrives ahead
of an earlier one (two senders at once), or after one was lost, is caught up
from the database in order; and every quiet heartbeat looks there too, so a
message whose announcement never came is sent within a heartbeat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from aia_api.agents.agents import load_agent
from aia_api.agents.message_models import AgentMessageView
from aia_api.agents.openapi import AGENT_ID, AGENTS
from aia_api.http.openapi import SECURED, Reply, operation
from aia_api.http.problems import Problem
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import Services, services
from aia_api.tasks.hub import Subscription, SubscriptionLost
from aia_api.tasks.openapi import AFTER, LAST_EVENT_ID, TICKET
from aia_api.tasks.streaming.slots import StreamLimitReached
from aia_api.tasks.streaming.sse import (
    EventStream,
    close_stream,
    last_event_id,
    open_stream,
    sse_error,
    sse_problem,
    too_many_streams,
)
from aia_workers.agents.mailbox import MailboxRepository, mailbox_channel, message_view
from aia_workers.agents.store import AgentRepository

__all__ = ["routes"]

# Messages read from the database at a time, replaying or catching up.
_BATCH = 200


def _sse(view: dict[str, Any]) -> bytes:
    return (
        f"id: {view['position']}\nevent: message\ndata: {orjson.dumps(view).decode()}\n\n".encode()
    )


def _missed(svc: Services, tenant: str, agent_id: str, after: int) -> list[dict[str, Any]] | None:
    """The mailbox's messages past ``after`` (a batch), or None when the agent is gone."""
    with svc.sessions() as session:
        if AgentRepository(session, tenant).get(agent_id) is None:
            return None
        rows = MailboxRepository(session, tenant).after(agent_id, after, limit=_BATCH)
        return [message_view(r) for r in rows]


@operation(
    id="agentMessageEvents",
    summary="Follow an agent's mailbox (SSE)",
    tag=AGENTS,
    permission=Permission.AGENTS_READ,
    responses={
        200: Reply(
            "An event stream; each `data:` is a message.",
            content={
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "x-event-schema": AgentMessageView,
                }
            },
        )
    },
    errors=(*SECURED, "400", "404"),
    description=(
        "Server-Sent Events of an agent's mailbox: first the messages after Last-Event-ID (or "
        "`?after=`; from the first without either), then each new one as it is stored. Each "
        "event is `id: <position>`, `event: message` and `data: <the message>` (its "
        "`deliveries` and `acked_at` as they were when sent); comments (`: keep-alive`) keep "
        "the connection open. The stream does not end by itself. An `event: error` with a "
        "problem in `data` says it was dropped: reconnect with Last-Event-ID; its `status` is "
        "401 or 403 when the credentials were revoked, expired or lost `agents:read`, 404 "
        "when the agent was deleted, and the stream ends there. Browsers send `?ticket=` from "
        "`POST /v1/streams/tickets`. 429 past `AIA_STREAM_MAX_CONNECTIONS` streams of the "
        "principal. Needs `agents:read`."
    ),
    parameters=(AGENT_ID, LAST_EVENT_ID, AFTER, TICKET),
)
async def mailbox_events(request: Request) -> StreamingResponse:
    svc = services(request)
    agent_id = request.path_params["agent_id"]
    after = last_event_id(request)
    principal = require(request, Permission.AGENTS_READ)
    tenant = principal.tenant

    def find() -> None:
        with svc.sessions() as session:
            load_agent(AgentRepository(session, tenant), agent_id)

    await anyio.to_thread.run_sync(find)
    sub = Subscription(svc.settings.subscriber_buffer)
    try:
        stream = await open_stream(svc, request, principal, sub, Permission.AGENTS_READ)
    except StreamLimitReached as exc:
        raise too_many_streams(svc, exc) from None
    try:
        # The tenant is in the channel's name: a stream never hears another tenant's mailbox.
        await svc.hub.attach(sub, mailbox_channel(tenant, agent_id))
    except BaseException:
        await close_stream(svc, stream)
        raise
    heartbeat = svc.settings.sse_heartbeat_seconds
    gone = Problem(404, "agent-not-found", "Agent not found", f"agent {agent_id} was deleted")

    async def events() -> AsyncIterator[bytes]:
        last = after

        async def catch_up() -> AsyncIterator[bytes]:
            # Everything past ``last`` the database has, in order.
            nonlocal last
            while True:
                batch = await anyio.to_thread.run_sync(_missed, svc, tenant, agent_id, last)
                if batch is None:
                    raise _AgentGone
                for view in batch:
                    last = view["position"]
                    yield _sse(view)
                if len(batch) < _BATCH:
                    return

        try:
            yield b"retry: 2000\n\n"
            async for chunk in catch_up():
                yield chunk
            while True:
                items = await sub.get(wait_seconds=heartbeat)
                if not items:
                    async for chunk in catch_up():
                        yield chunk
                    yield b": keep-alive\n\n"
                    continue
                for view in items:
                    position = view.get("position") if isinstance(view, dict) else None
                    if not isinstance(position, int) or position <= last:
                        continue
                    if position == last + 1:
                        last = position
                        yield _sse(view)
                    else:
                        async for chunk in catch_up():
                            yield chunk
        except _AgentGone:
            yield sse_problem(gone)
        except SubscriptionLost as exc:
            if stream.ended is not None:
                yield sse_problem(stream.ended)
            elif sub.lost != "client disconnected":
                yield sse_error(str(exc))

    return EventStream(events(), svc, stream)


class _AgentGone(Exception):
    """The agent whose mailbox a stream follows was deleted."""


routes = [Route("/v1/agents/{agent_id}/messages/events", mailbox_events, methods=["GET"])]
