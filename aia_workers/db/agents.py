"""Agents: a tenant's agents and their runs, what runs keep, and research corpora."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aia_workers.db.base import Base, UTCDateTime

__all__ = [
    "Agent",
    "AgentMessage",
    "AgentRun",
    "Corpus",
    "CorpusDocument",
    "MonitoringRuleState",
]


class Agent(Base):
    """A named, configured instance of an agent type (``type``, an ``aia.agents`` entry point).

    ``config`` is what the type's ``config_model`` accepted when it was last set.
    ``max_concurrency`` bounds the agent's runs at once, across every worker
    (``aia_workers.agents.concurrency``).
    """

    __tablename__ = "agents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_agents_tenant_name"),
        Index("ix_agents_tenant", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(100))
    config: Mapped[Any] = mapped_column(JSON)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AgentRun(Base):
    """One run of an agent: its id is the ``agents.run`` task's, whose record has the rest.

    No foreign key to ``agents``: the worker writes this row too (for runs
    submitted through ``/v1/tasks``), and a delete racing a run must not turn
    into an integrity error there; deleting an agent deletes its runs itself.
    """

    __tablename__ = "agent_runs"
    __table_args__ = (Index("ix_agent_runs_agent", "tenant_id", "agent_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str] = mapped_column(String(36))
    input: Mapped[Any] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MonitoringRuleState(Base):
    """A monitoring agent's rule as its last run left it: ok or firing, and since when.

    A run compares its verdict with this row and announces ``alert.fired`` only
    when they differ, so a rule checked every minute alerts once per change.
    ``transitions`` counts the changes and makes each announcement's dedupe
    key, so a run delivered twice announces a change once.
    """

    __tablename__ = "monitoring_rule_states"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule: Mapped[str] = mapped_column(String(100), primary_key=True)
    # ok | firing
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    transitions: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Corpus(Base):
    """A tenant's named collection of documents that research agents search.

    ``version`` goes up with every document added or removed, so an index built
    for (id, version) is known to be current without reading the documents.
    """

    __tablename__ = "agent_corpora"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_agent_corpora_tenant_name"),
        Index("ix_agent_corpora_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CorpusDocument(Base):
    """One uploaded file of a corpus: where its bytes are and how much text it gave."""

    __tablename__ = "agent_documents"
    __table_args__ = (
        Index("ix_agent_documents_corpus_created", "corpus_id", "created_at", "id"),
        Index("ix_agent_documents_tenant", "tenant_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    corpus_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("agent_corpora.id", ondelete="CASCADE")
    )
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    media_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    artifact_key: Mapped[str] = mapped_column(String(400))
    # Characters of the text extracted from the file; citations are offsets into that text.
    text_chars: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


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
