"""Agents' mailboxes: messages to an agent, in order per sender, delivered at least once.

Plain code, no Celery. A message is posted over the API (``POST
/v1/agents/{id}/messages``) or sent by another agent's run; either way it is
stored by ``MailboxRepository.post``, which also records the ``agent.message``
webhook event in the same transaction, and, once committed, announced on the
mailbox's Redis channel (``mailbox_channel``) for the SSE streams that follow it.

Order: posting locks the recipient's row, so a mailbox's messages are numbered
(``position``, and ``seq`` per sender) in the order they commit; a reader that
has seen position n has seen every message before it.

Delivery (``RunMailbox``, one per run): ``inbox()`` hands a run the agent's
unacknowledged messages, oldest first, counting a delivery for each; the run
acknowledges what it has dealt with (``ack``), and when it succeeds, the
framework acknowledges the rest it was handed unless its type opted out
(``AgentType.acks_on_success``). A run that fails or is cancelled leaves them
unacknowledged, so the next run is handed them again: at least once. Two runs
of one agent at once (``max_concurrency`` above 1) may both be handed a message.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aia_workers.agents.contracts import Message
from aia_workers.db.agents import Agent, AgentMessage
from aia_workers.db.cursors import InvalidCursorError
from aia_workers.errors import ConflictError, TaskFailure

if TYPE_CHECKING:
    from aia_workers.agents.contracts import AgentEnvironment
    from aia_workers.ml.registry import ModelEvents

__all__ = [
    "MESSAGE_EVENT",
    "IdempotencyKeyReusedError",
    "MailboxRepository",
    "MessageTooLargeError",
    "RunMailbox",
    "UnknownRecipientError",
    "agent_sender",
    "announce",
    "mailbox_channel",
    "message_of",
    "message_view",
]

log = logging.getLogger(__name__)

MESSAGE_EVENT = "agent.message"
# The most messages one inbox() hands a run at once.
MAX_INBOX = 1000


class MessageTooLargeError(TaskFailure):
    """Raised when a message's body is not a JSON object of at most AIA_AGENT_MESSAGE_MAX_BYTES."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the message's body is {size} bytes of JSON, more than the limit of {limit} "
            "(AIA_AGENT_MESSAGE_MAX_BYTES); send less, or a reference to where the rest is"
        )
        self.size = size
        self.limit = limit


class UnknownRecipientError(TaskFailure):
    """Raised when a message is sent to an agent (id or name) its sender's tenant does not have."""

    def __init__(self, agent: str) -> None:
        super().__init__(f"there is no agent {agent!r} (by id or name) in this tenant to send to")
        self.agent = agent


class IdempotencyKeyReusedError(ConflictError):
    """Raised when an Idempotency-Key posts a message again with a different body."""

    def __init__(self, message_id: str) -> None:
        super().__init__(
            "this Idempotency-Key was used with a different body; use a new key for a new message"
        )
        self.message_id = message_id


def agent_sender(agent_id: str) -> str:
    """How a message sent by a run of ``agent_id`` names its sender."""
    return f"agent:{agent_id}"


def mailbox_channel(tenant: str, agent_id: str) -> str:
    """The Redis pub/sub channel a mailbox's new messages are announced on, each as its view."""
    return f"aia:agent:{tenant}:{agent_id}:mailbox"


def message_view(row: AgentMessage) -> dict[str, Any]:
    """The message as JSON: the API's view, the stream's data and the announcement."""
    return {
        "id": row.id,
        "agent_id": row.agent_id,
        "sender": row.sender,
        "seq": row.seq,
        "position": row.position,
        "body": row.body,
        "deliveries": row.deliveries,
        "created_at": row.created_at.isoformat(),
        "acked_at": row.acked_at.isoformat() if row.acked_at else None,
        "acked_by": row.acked_by,
    }


def message_of(row: AgentMessage) -> Message:
    """The message as a run reads it."""
    return Message(
        id=row.id,
        agent_id=row.agent_id,
        sender=row.sender,
        seq=row.seq,
        position=row.position,
        body=row.body,
        created_at=row.created_at,
        deliveries=row.deliveries,
    )


def _json_body(body: Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise TaskFailure(f"a message's body is a JSON object, not {type(body).__name__}")
    try:
        encoded = orjson.dumps(body)
    except TypeError as exc:
        raise TaskFailure(f"a message's body must be JSON: {exc}") from None
    if len(encoded) > max_bytes:
        raise MessageTooLargeError(len(encoded), max_bytes)
    # What the database and every reader will see: plain JSON, nothing else.
    decoded: dict[str, Any] = orjson.loads(encoded)
    return decoded


def _encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(["m", position])).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, position = orjson.loads(raw)
        if tag != "m" or not isinstance(position, int) or position < 0:
            raise ValueError("not a mailbox cursor")
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidCursorError(
            "the cursor is not one this API returned; start again without it"
        ) from exc
    return position


class MailboxRepository:
    """The mailboxes of one tenant's agents; nothing here sees another tenant's messages.

    Writes are flushed, not committed: the caller owns the transaction, and
    announces a posted message on its channel once that commits.
    """

    def __init__(
        self, session: Session, tenant_id: str, *, events: ModelEvents | None = None
    ) -> None:
        self._session = session
        self._tenant_id = tenant_id
        self._events = events

    def post(
        self,
        recipient: str,
        sender: str,
        body: Mapping[str, Any],
        *,
        max_body_bytes: int,
        idempotency_key: str | None = None,
    ) -> tuple[AgentMessage, bool]:
        """Store ``body`` in the mailbox of ``recipient`` (an agent's id, or its name).

        Returns the message and whether it is new: a second post with the same
        ``idempotency_key`` (and sender, and recipient) returns the first
        message, or raises IdempotencyKeyReusedError when the body differs.
        UnknownRecipientError when the tenant has no such agent;
        MessageTooLargeError past ``max_body_bytes`` of JSON.
        """
        data = _json_body(body, max_body_bytes)
        agent = self._lock(recipient)
        if agent is None:
            raise UnknownRecipientError(recipient)
        mine = (AgentMessage.tenant_id == self._tenant_id, AgentMessage.agent_id == agent.id)
        if idempotency_key is not None:
            earlier = self._session.scalars(
                select(AgentMessage).where(
                    *mine,
                    AgentMessage.sender == sender,
                    AgentMessage.idempotency_key == idempotency_key,
                )
            ).one_or_none()
            if earlier is not None:
                if earlier.body != data:
                    raise IdempotencyKeyReusedError(earlier.id)
                return earlier, False
        # Safe without a retry: the recipient's row is locked until this commits.
        position = self._session.scalar(
            select(func.coalesce(func.max(AgentMessage.position), 0)).where(*mine)
        )
        seq = self._session.scalar(
            select(func.coalesce(func.max(AgentMessage.seq), 0)).where(
                *mine, AgentMessage.sender == sender
            )
        )
        row = AgentMessage(
            id=str(uuid.uuid4()),
            tenant_id=self._tenant_id,
            agent_id=agent.id,
            sender=sender,
            seq=(seq or 0) + 1,
            position=(position or 0) + 1,
            body=data,
            idempotency_key=idempotency_key,
            deliveries=0,
            created_at=datetime.now(UTC),
        )
        self._session.add(row)
        self._session.flush()
        if self._events is not None:
            self._events(
                self._session,
                self._tenant_id,
                MESSAGE_EVENT,
                {
                    "message_id": row.id,
                    "agent_id": agent.id,
                    "agent": agent.name,
                    "sender": row.sender,
                    "seq": row.seq,
                    "position": row.position,
                    "body": row.body,
                    "created_at": row.created_at.isoformat(),
                },
                dedupe_key=f"{MESSAGE_EVENT}:{row.id}",
            )
        return row, True

    def page(
        self, agent_id: str, *, pending: bool, limit: int, cursor: str | None
    ) -> tuple[list[AgentMessage], str | None]:
        """A page of the agent's messages, oldest first (mailbox order), and the next cursor.

        ``pending``: only those no run has acknowledged yet.
        """
        stmt = select(AgentMessage).where(
            AgentMessage.tenant_id == self._tenant_id, AgentMessage.agent_id == agent_id
        )
        if pending:
            stmt = stmt.where(AgentMessage.acked_at.is_(None))
        if cursor:
            stmt = stmt.where(AgentMessage.position > _decode_cursor(cursor))
        rows = list(self._session.scalars(stmt.order_by(AgentMessage.position).limit(limit + 1)))
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, _encode_cursor(rows[-1].position)

    def after(self, agent_id: str, position: int, *, limit: int) -> list[AgentMessage]:
        """The agent's messages past ``position``, oldest first: what a stream missed."""
        stmt = (
            select(AgentMessage)
            .where(
                AgentMessage.tenant_id == self._tenant_id,
                AgentMessage.agent_id == agent_id,
                AgentMessage.position > position,
            )
            .order_by(AgentMessage.position)
            .limit(limit)
        )
        return list(self._session.scalars(stmt))

    def deliver(
        self, agent_id: str, *, limit: int, handed: Iterable[str] = ()
    ) -> list[AgentMessage]:
        """The agent's oldest ``limit`` unacknowledged messages, each counted as delivered
        once more unless it is in ``handed`` (given to the same run before)."""
        mine = (AgentMessage.tenant_id == self._tenant_id, AgentMessage.agent_id == agent_id)
        pending = (
            select(AgentMessage.id)
            .where(*mine, AgentMessage.acked_at.is_(None))
            .order_by(AgentMessage.position)
            .limit(limit)
        )
        ids = list(self._session.scalars(pending))
        seen = set(handed)
        fresh = [i for i in ids if i not in seen]
        if fresh:
            self._session.execute(
                update(AgentMessage)
                .where(*mine, AgentMessage.id.in_(fresh))
                .values(deliveries=AgentMessage.deliveries + 1)
                .execution_options(synchronize_session=False)
            )
        if not ids:
            return []
        rows = self._session.scalars(
            select(AgentMessage)
            .where(*mine, AgentMessage.id.in_(ids))
            .order_by(AgentMessage.position)
            .execution_options(populate_existing=True)
        )
        return list(rows)

    def ack(self, agent_id: str, run_id: str, message_ids: Iterable[str]) -> list[str]:
        """Acknowledge those of ``message_ids`` in the agent's mailbox and not acknowledged
        yet, as ``run_id``; the ids acknowledged now (others are left as they are)."""
        wanted = sorted(set(message_ids))
        if not wanted:
            return []
        result = self._session.execute(
            update(AgentMessage)
            .where(
                AgentMessage.tenant_id == self._tenant_id,
                AgentMessage.agent_id == agent_id,
                AgentMessage.id.in_(wanted),
                AgentMessage.acked_at.is_(None),
            )
            .values(acked_at=datetime.now(UTC), acked_by=run_id)
            .returning(AgentMessage.id)
            .execution_options(synchronize_session=False)
        )
        return list(result.scalars())

    def _lock(self, agent: str) -> Agent | None:
        """The tenant's agent ``agent`` (id first, then name), its row locked till commit."""
        mine = select(Agent).where(Agent.tenant_id == self._tenant_id).with_for_update()
        found = self._session.scalars(mine.where(Agent.id == agent)).one_or_none()
        if found is None:
            found = self._session.scalars(mine.where(Agent.name == agent)).one_or_none()
        return found


def announce(client: redis.Redis, tenant: str, row: AgentMessage) -> None:
    """Tell the mailbox's live followers about ``row``, committed; a lost one is caught up
    from the database by the streams, so Redis being away only logs."""
    try:
        client.publish(mailbox_channel(tenant, row.agent_id), orjson.dumps(message_view(row)))
    except redis.RedisError as exc:
        log.warning("could not announce message %s on its mailbox channel: %s", row.id, exc)


class RunMailbox:
    """The mailbox as one run sees it: what it was handed, what it acknowledged, what it sent.

    Each call is a short transaction of its own, so what a run acknowledges
    stays acknowledged whatever happens to the run afterwards.
    """

    def __init__(self, env: AgentEnvironment, tenant: str, agent_id: str, run_id: str) -> None:
        self._env = env
        self._tenant = tenant
        self._agent_id = agent_id
        self._run_id = run_id
        # Ordered: the messages handed to this run, and which it acknowledged.
        self._handed: dict[str, None] = {}
        self._acked: set[str] = set()
        self._sent = 0

    @property
    def handed(self) -> list[str]:
        """The ids of the messages this run was handed, in mailbox order."""
        return list(self._handed)

    def inbox(self, limit: int = 100) -> list[Message]:
        """The agent's unacknowledged messages, oldest first, at most ``limit``."""
        if not 1 <= limit <= MAX_INBOX:
            raise ValueError(f"inbox(limit) takes 1 to {MAX_INBOX}, not {limit}")
        with self._env.sessions.begin() as session:
            rows = MailboxRepository(session, self._tenant).deliver(
                self._agent_id, limit=limit, handed=self._handed
            )
            messages = [message_of(r) for r in rows]
        for message in messages:
            self._handed.setdefault(message.id, None)
        return messages

    def ack(self, message_ids: Iterable[str]) -> list[str]:
        """Acknowledge messages of this agent's mailbox; the ids acknowledged now."""
        if isinstance(message_ids, str):
            raise TypeError("ack() takes an iterable of message ids, not one id as a string")
        ids = [i for i in message_ids if i not in self._acked]
        if not ids:
            return []
        with self._env.sessions.begin() as session:
            done = MailboxRepository(session, self._tenant).ack(self._agent_id, self._run_id, ids)
        self._acked.update(ids)
        return done

    def send(self, agent: str, body: Mapping[str, Any]) -> str:
        """Send ``body`` to ``agent`` (id or name, this tenant), as ``agent:<this agent>``.

        Each send of a run carries a key made of the run's id and its number
        in the run, so a run delivered twice that sends the same thing again
        stores it once.
        """
        self._sent += 1
        key = f"run:{self._run_id}:{self._sent}"
        sender = agent_sender(self._agent_id)
        limit = self._env.settings.agent_message_max_bytes
        with self._env.sessions.begin() as session:
            mailboxes = MailboxRepository(session, self._tenant, events=self._env.events)
            try:
                row, created = mailboxes.post(
                    agent, sender, body, max_body_bytes=limit, idempotency_key=key
                )
            except IdempotencyKeyReusedError:
                # This run sends something else this time: a new message, not a replay.
                row, created = mailboxes.post(agent, sender, body, max_body_bytes=limit)
        if created:
            announce(self._env.redis, self._tenant, row)
        return row.id

    def settle(self) -> list[str]:
        """The run succeeded: acknowledge every message it was handed and did not ack."""
        return self.ack([i for i in self._handed if i not in self._acked])
