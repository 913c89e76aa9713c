"""Publishing an event: one outbox row per subscribed endpoint, in the caller's transaction.

Nothing is sent here. The rows commit or roll back with the change they
report, so an event is never lost between the database and the broker; the
relay (``relay.py``) hands committed rows to delivery tasks.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aia_workers.db.webhooks import WebhookEndpoint, WebhookMessage
from aia_workers.webhooks.catalog import event_type

__all__ = ["WAKE_CHANNEL", "Event", "message_id", "publish", "publish_many"]

# Publishers ping this Redis channel after commit so the relay looks at once.
WAKE_CHANNEL = "aia:webhooks:wake"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in one tenant, as webhooks report it."""

    tenant: str
    type: str
    payload: Mapping[str, Any]
    # Two events with the same key are the same event (a replayed batch, a
    # task delivered twice); None makes every publish a new event.
    dedupe_key: str | None = None
    # The W3C traceparent of the span that caused the event; its deliveries
    # are spans of the same trace.
    traceparent: str | None = None


def message_id() -> str:
    """A new ``webhook-id``: ``msg_`` and 32 hex digits."""
    return f"msg_{uuid.uuid4().hex}"


def publish(
    session: Session,
    tenant: str,
    type_name: str,
    payload: Mapping[str, Any],
    *,
    dedupe_key: str | None = None,
    endpoint_id: str | None = None,
) -> list[str]:
    """Record ``payload`` for every enabled endpoint of ``tenant`` subscribed to ``type_name``.

    ``endpoint_id`` limits it to one endpoint (a test send). Returns the new
    messages' ids; an event already recorded under ``dedupe_key`` adds none.
    """
    return publish_many(
        session, [Event(tenant, type_name, payload, dedupe_key)], endpoint_id=endpoint_id
    )


def publish_many(
    session: Session, events: Sequence[Event], *, endpoint_id: str | None = None
) -> list[str]:
    """``publish`` for many events with one query for their endpoints and one insert."""
    if not events:
        return []
    tenants = {e.tenant for e in events}
    stmt = select(WebhookEndpoint).where(
        WebhookEndpoint.tenant_id.in_(tenants), WebhookEndpoint.enabled.is_(True)
    )
    if endpoint_id is not None:
        stmt = stmt.where(WebhookEndpoint.id == endpoint_id)
    by_tenant: dict[str, list[WebhookEndpoint]] = {}
    for endpoint in session.scalars(stmt):
        by_tenant.setdefault(endpoint.tenant_id, []).append(endpoint)
    if not by_tenant:
        return []
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for event in events:
        subscribed = [
            e
            for e in by_tenant.get(event.tenant, ())
            if event.type in e.events or endpoint_id is not None
        ]
        if not subscribed:
            continue
        payload = event_type(event.type).payload.model_validate(event.payload)
        data = payload.model_dump(mode="json")
        for endpoint in subscribed:
            ident = message_id()
            rows.append(
                {
                    "id": ident,
                    "tenant_id": event.tenant,
                    "endpoint_id": endpoint.id,
                    "event_type": event.type,
                    "dedupe_key": event.dedupe_key or ident,
                    "payload": data,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "trigger": "scheduled",
                    "created_at": now,
                    "traceparent": event.traceparent,
                }
            )
    if not rows:
        return []
    pg = session.get_bind().dialect.name == "postgresql"
    insert = postgresql.insert if pg else sqlite.insert
    table = cast(Table, WebhookMessage.__table__)
    stmt_insert = (
        insert(table)
        .on_conflict_do_nothing(index_elements=[table.c.endpoint_id, table.c.dedupe_key])
        .returning(table.c.id)
    )
    created: list[str] = []
    for row in rows:
        created += list(session.scalars(stmt_insert, row))
    return created
