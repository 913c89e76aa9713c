"""Webhooks: tenants' endpoints, the outbox of messages to deliver, and the log of attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from aia_workers.db.base import Base, UTCDateTime

__all__ = [
    "WebhookAttempt",
    "WebhookEndpoint",
    "WebhookMessage",
]


class WebhookEndpoint(Base):
    """Where a tenant wants to hear about events, and the secret deliveries are signed with."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    events: Mapped[Any] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Encrypted at rest (aia_workers/secretbox.py), as is the previous one.
    secret: Mapped[str] = mapped_column(String(512))
    # During a rotation the old secret also signs, until it expires.
    previous_secret: Mapped[str | None] = mapped_column(String(512), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), nullable=True
    )
    disabled_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # The first failure since the last success; None while healthy.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookMessage(Base):
    """One event for one endpoint: the outbox row a delivery task works from.

    Written in the same transaction as the change it reports; its id is the
    ``webhook-id`` of every attempt, so receivers can deduplicate.
    """

    __tablename__ = "webhook_messages"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "dedupe_key", name="uq_webhook_messages_dedupe"),
        Index("ix_webhook_messages_due", "status", "next_attempt_at"),
        Index("ix_webhook_messages_endpoint", "endpoint_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    endpoint_id: Mapped[str] = mapped_column(String(36), ForeignKey("webhook_endpoints.id"))
    event_type: Mapped[str] = mapped_column(String(64))
    # What makes two messages the same event (e.g. "task.succeeded:<task id>").
    dedupe_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[Any] = mapped_column(JSON)
    # pending -> sending -> delivered | pending (retry) | failed (dead letter)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # How the next attempt was asked for: scheduled, manual or replay.
    trigger: Mapped[str] = mapped_column(String(16), default="scheduled")
    # A sending message whose lease ran out was lost with its worker; it is sent again.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The W3C traceparent of what caused the event (a task's run), so that each
    # delivery is a span of that trace; None when it was not traced.
    traceparent: Mapped[str | None] = mapped_column(String(55), nullable=True)


class WebhookAttempt(Base):
    """One try at delivering a message: what came back, how long it took, what next."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_endpoint", "endpoint_id", "created_at", "id"),
        Index("ix_webhook_attempts_message", "message_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    endpoint_id: Mapped[str] = mapped_column(String(36))
    message_id: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(2000))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
