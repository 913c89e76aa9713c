"""``/v1/agents/{agent_id}/messages``: post to an agent's mailbox, and read it.

Storing a message records its ``agent.message`` webhook event in the same
transaction; once committed, it is announced on the mailbox's Redis channel
for the streams following it (``mailbox_stream.py``).
"""

from __future__ import annotations

import contextlib

import anyio.to_thread
import orjson
import redis.exceptions
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.agents.agents import load_agent
from aia_api.agents.message_models import AgentMessagePage, AgentMessageRequest, AgentMessageView
from aia_api.agents.openapi import AGENT_ID, AGENTS, NEEDS_READ, NEEDS_RUN
from aia_api.http.body import parse_model, read_json
from aia_api.http.listing import Page, stored_page
from aia_api.http.openapi import CURSOR, LIMIT, SECURED, WITH_BODY, Body, Reply, operation
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import services
from aia_api.tasks.openapi import IDEMPOTENCY_KEY
from aia_workers.agents.mailbox import (
    IdempotencyKeyReusedError,
    MailboxRepository,
    MessageTooLargeError,
    mailbox_channel,
    message_view,
)
from aia_workers.agents.store import AgentRepository
from aia_workers.backbone.announcements import to_webhooks
from aia_workers.db.agents import AgentMessage

__all__ = ["routes"]

_PENDING = {
    "name": "pending",
    "in": "query",
    "required": False,
    "description": "`true`: only the messages no run has acknowledged yet.",
    "schema": {"type": "boolean", "default": False},
}


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 255:
        raise Problem(
            400,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            "the Idempotency-Key header must be 1 to 255 characters",
        )
    return key


def _pending(request: Request) -> bool:
    raw = request.query_params.get("pending", "false").lower()
    if raw not in ("true", "false"):
        raise Problem(
            422,
            "validation-error",
            "Invalid request",
            "pending must be true or false",
            errors=[
                {
                    "loc": ["query", "pending"],
                    "pointer": "/query/pending",
                    "message": "must be true or false",
                    "type": "bool_parsing",
                }
            ],
        )
    return raw == "true"


@operation(
    id="postAgentMessage",
    summary="Send a message to an agent",
    tag=AGENTS,
    permission=Permission.AGENTS_RUN,
    responses={
        201: Reply(
            "Stored in the agent's mailbox.", AgentMessageView, headers=("Idempotent-Replayed",)
        )
    },
    errors=(*SECURED, *WITH_BODY, "404", "409"),
    description=(
        f"{NEEDS_RUN} The message waits in the agent's mailbox until a run of the agent "
        "reads and acknowledges it (`ctx.inbox()`, `ctx.ack()`): delivered at least once, in "
        "order per sender (`seq`), to the next run again when a run that read it fails. The "
        "sender is the caller (`key:<id>` or `user:<id>`). It goes out as the "
        "`agent.message` webhook and on the mailbox's stream. 413 past "
        "`AIA_AGENT_MESSAGE_MAX_BYTES` of JSON. With an Idempotency-Key, posting again with "
        "the same body returns the first message (`Idempotent-Replayed: true`); with another "
        "body, 409."
    ),
    parameters=(AGENT_ID, IDEMPOTENCY_KEY),
    body=Body("The message.", AgentMessageRequest),
)
async def post_message(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_RUN)
    svc = services(request)
    body = parse_model(AgentMessageRequest, await read_json(request, svc.settings.max_body_bytes))
    key = _idempotency_key(request)
    agent_id = request.path_params["agent_id"]
    limit = svc.settings.agent_message_max_bytes

    def store() -> tuple[AgentMessage, bool]:
        with svc.sessions.begin() as session:
            load_agent(AgentRepository(session, principal.tenant), agent_id)
            mailboxes = MailboxRepository(session, principal.tenant, events=to_webhooks)
            try:
                return mailboxes.post(
                    agent_id, principal.actor, body.body, max_body_bytes=limit, idempotency_key=key
                )
            except MessageTooLargeError as exc:
                raise Problem(
                    413, "message-too-large", "Message too large", str(exc), max_bytes=exc.limit
                ) from None
            except IdempotencyKeyReusedError as exc:
                raise Problem(
                    409,
                    "idempotency-key-reused",
                    "Idempotency key reused",
                    str(exc),
                    message_id=exc.message_id,
                ) from None

    row, created = await anyio.to_thread.run_sync(store)
    view = message_view(row)
    if not created:
        return json_reply(view, 201, {"Idempotent-Replayed": "true"})
    # Stored is what counts: a stream that misses this catches up from the database.
    with contextlib.suppress(redis.exceptions.RedisError):
        await svc.redis.publish(mailbox_channel(principal.tenant, agent_id), orjson.dumps(view))
    return json_reply(view, 201)


@operation(
    id="listAgentMessages",
    summary="An agent's mailbox",
    tag=AGENTS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("Oldest first; follow links.next for more.", AgentMessagePage)},
    errors=(*SECURED, "400", "404", "422"),
    description=(
        f"{NEEDS_READ} The agent's messages in mailbox order (`position`), each with its "
        "deliveries and, once a run acknowledged it, when and which run; `?pending=true` "
        "lists only those waiting for a run."
    ),
    parameters=(AGENT_ID, _PENDING, LIMIT, CURSOR),
)
async def list_messages(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)
    agent_id = request.path_params["agent_id"]
    pending = _pending(request)

    def fetch(session: Session, limit: int, cursor: str | None) -> Page[AgentMessage]:
        load_agent(AgentRepository(session, principal.tenant), agent_id)
        return MailboxRepository(session, principal.tenant).page(
            agent_id, pending=pending, limit=limit, cursor=cursor
        )

    return await stored_page(request, services(request).sessions, fetch, message_view)


_MESSAGES = "/v1/agents/{agent_id}/messages"
routes = [
    Route(_MESSAGES, post_message, methods=["POST"]),
    Route(_MESSAGES, list_messages, methods=["GET"]),
]
