"""Agents' mailboxes: the messages sent to each agent, by other agents or over the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aia_workers.db.base import Base, UTCDateTime

__all__ = ["AgentMessage"]


class AgentMessage(Base):
    """One message in the mailbox of the agent ``agent_id`` (the recipient).

    ``sender`` is ``agent:<id>`` for a run that sent it, else the principal
    (``key:<id>``, ``user:<id>``). ``seq`` numbers a sender's messages to this
    recipient (1, 2, ...), so their order is explicit; ``position`` numbers
    every message of the mailbox in the order they were committed, and is the
    mailbox stream's event id. ``deliveries`` counts the runs it was handed to;
    ``acked_by`` is the run that acknowledged it. No foreign key to ``agents``,
    as with runs: deleting an agent deletes its mailbox itself.
    """

    __tablename__ = "agent_messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "agent_id", "position", name="uq_agent_messages_position"),
        UniqueConstraint(
            "tenant_id", "agent_id", "sender", "seq", name="uq_agent_messages_sender_seq"
        ),
        UniqueConstraint(
            "tenant_id",
            "agent_id",
            "sender",
            "idempotency_key",
            name="uq_agent_messages_idempotency",
        ),
        Index("ix_agent_messages_pending", "tenant_id", "agent_id", "acked_at", "position"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str] = mapped_column(String(36))
    sender: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    body: Mapped[Any] = mapped_column(JSON)
    # The Idempotency-Key it was posted with (or a run's own), so a retry finds it.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    deliveries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
