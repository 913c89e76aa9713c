"""Claiming messages for an attempt: several at once, in two statements.

The database is the source of truth for each message's state, so a
duplicate task, a retried one or one re-sent after its worker died all find
out here whether there is anything left to do.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import Integer, Table, and_, bindparam, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

from aia_workers.db.base import UTCDateTime
from aia_workers.db.webhooks import WebhookEndpoint, WebhookMessage
from aia_workers.secretbox import SecretBox
from aia_workers.webhooks.relay import due_at, one_pass_at_a_time
from aia_workers.webhooks.store import signing_secrets

__all__ = [
    "NOT_OWED",
    "UNREADABLE",
    "Claim",
    "Claimed",
    "claim_due",
    "claim_next",
    "message_body",
]

log = logging.getLogger(__name__)

NOT_OWED = "not owed now (delivered, failed, not due, or being sent)"
UNREADABLE = "its endpoint's signing secret cannot be read; it goes again when its lease runs out"
_DISABLED = "endpoint disabled"
_CLAIMED = (
    WebhookMessage.id,
    WebhookMessage.tenant_id,
    WebhookMessage.endpoint_id,
    WebhookMessage.event_type,
    WebhookMessage.payload,
    WebhookMessage.created_at,
    WebhookMessage.attempts,
    WebhookMessage.trigger,
    WebhookMessage.traceparent,
)
# A task may run a moment before its message's time (clocks, rounding).
_EARLY = timedelta(milliseconds=250)


@dataclass(frozen=True, slots=True)
class Claim:
    """One message taken for its next attempt, with all that attempt needs."""

    message_id: str
    endpoint_id: str
    tenant: str
    url: str
    secrets: list[str]
    body: bytes
    attempt: int
    trigger: str
    event_type: str
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a claim took, in the order asked, and why each other message was skipped."""

    claims: list[Claim]
    skipped: dict[str, str]


def message_body(event_type: str, created_at: datetime, payload: object) -> bytes:
    """The JSON sent for a message: the same bytes on every attempt."""
    envelope = {"type": event_type, "timestamp": created_at.isoformat(), "data": payload}
    return orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS)


def claim_due(
    session: Session,
    messages: Sequence[tuple[str, str]],
    *,
    now: datetime,
    lease_seconds: float,
    box: SecretBox,
) -> Claimed:
    """Take each of ``messages`` ((id, tenant) pairs) that is still owed, for ``lease_seconds``.

    One statement both checks and takes them: a message must be due and not
    held by a live attempt, so a duplicate or early task finds nothing. A
    message whose endpoint is gone or disabled fails here, unsent. A message
    whose endpoint's secret cannot be decrypted stays claimed, unsent and
    with no attempt logged, until its lease runs out, as a lone message's
    failed task left it; the others are claimed as usual.
    """
    m = WebhookMessage
    if not messages:
        return Claimed([], {})
    rows = session.execute(
        update(m)
        .where(
            tuple_(m.id, m.tenant_id).in_(list(messages)),
            or_(
                and_(m.status == "pending", m.next_attempt_at <= now + _EARLY),
                and_(m.status == "sending", m.lease_until < now),
            ),
        )
        .values(status="sending", lease_until=now + timedelta(seconds=lease_seconds))
        .returning(*_CLAIMED)
        .execution_options(synchronize_session=False)
    ).all()
    taken = {row.id for row in rows}
    skipped = {ident: NOT_OWED for ident, _ in messages if ident not in taken}
    return _taken(session, rows, [ident for ident, _ in messages], skipped, now=now, box=box)


# claim_next's statements, built once: a batch runs them for every group of
# replies, and building them and their cache keys was most of its CPU.
_table = cast(Table, WebhookMessage.__table__)
_now = bindparam("now", type_=UTCDateTime())
_IN_FLIGHT = (
    select(_table.c.tenant_id, func.count())
    .where(
        _table.c.tenant_id.in_(bindparam("tenants", expanding=True)),
        _table.c.status.in_(("pending", "sending")),
        _table.c.lease_until >= _now,
    )
    .group_by(_table.c.tenant_id)
)
_NEXT = (
    update(_table)
    .where(
        _table.c.id.in_(
            select(_table.c.id)
            .where(
                _table.c.tenant_id == bindparam("tenant"),
                _table.c.traceparent.is_(None),
                due_at(_now),
            )
            .order_by(_table.c.next_attempt_at, _table.c.id)
            .limit(bindparam("room", type_=Integer))
            .scalar_subquery()
        )
    )
    .values(status="sending", lease_until=bindparam("until", type_=UTCDateTime()))
    .returning(*(_table.c[column.key] for column in (WebhookMessage.next_attempt_at, *_CLAIMED)))
)


def claim_next(
    session: Session,
    tenants: Collection[str],
    *,
    now: datetime,
    lease_seconds: float,
    tenant_max_inflight: int,
    limit: int,
    box: SecretBox,
) -> list[Claim]:
    """Lease and claim at once ``tenants``' oldest due untraced messages, within their room.

    What ``lease_due`` then ``claim_due`` would take for these few tenants, in
    about half the statements: a batch does this each time it records a group
    of replies. Held to the relay's one-pass lock, as ``lease_due`` is.
    """
    one_pass_at_a_time(session)
    inflight: dict[str, int] = {
        tenant: int(count)
        for tenant, count in session.execute(_IN_FLIGHT, {"tenants": list(tenants), "now": now})
    }
    until = now + timedelta(seconds=lease_seconds)
    rows: list[Any] = []
    for tenant in sorted(tenants):
        room = min(tenant_max_inflight - inflight.get(tenant, 0), limit - len(rows))
        if room <= 0:
            continue
        found = session.execute(
            _NEXT, {"tenant": tenant, "room": room, "now": now, "until": until}
        ).all()
        rows += found
    if not rows:
        return []
    rows.sort(key=lambda row: (row.next_attempt_at, row.id))
    return _taken(session, rows, [row.id for row in rows], {}, now=now, box=box).claims


def _taken(
    session: Session,
    rows: Sequence[Any],
    order: Sequence[str],
    skipped: dict[str, str],
    *,
    now: datetime,
    box: SecretBox,
) -> Claimed:
    """The claims for ``rows`` just taken, in ``order``; those whose endpoint is disabled fail."""
    m = WebhookMessage
    by_id = {row.id: row for row in rows}
    if not rows:
        return Claimed([], skipped)
    e = WebhookEndpoint
    endpoints = {
        endpoint.id: endpoint
        for endpoint in session.scalars(select(e).where(e.id.in_({r.endpoint_id for r in rows})))
        if endpoint.enabled
    }
    # Decrypted once per endpoint, not once per message.
    secrets: dict[str, list[str]] = {}
    for endpoint_id, known in endpoints.items():
        try:
            secrets[endpoint_id] = signing_secrets(known, box, now)
        except Exception:
            log.exception("webhook endpoint %s: its signing secret cannot be read", endpoint_id)
    claims: list[Claim] = []
    dead: list[str] = []
    for ident in order:
        row = by_id.get(ident)
        if row is None:
            continue
        endpoint = endpoints.get(row.endpoint_id)
        if endpoint is None:
            dead.append(ident)
            skipped[ident] = _DISABLED
            continue
        if endpoint.id not in secrets:
            skipped[ident] = UNREADABLE
            continue
        claims.append(
            Claim(
                message_id=ident,
                endpoint_id=endpoint.id,
                tenant=row.tenant_id,
                url=endpoint.url,
                secrets=secrets[endpoint.id],
                body=message_body(row.event_type, row.created_at, row.payload),
                attempt=row.attempts + 1,
                trigger=row.trigger,
                event_type=row.event_type,
                traceparent=row.traceparent,
            )
        )
    if dead:
        session.execute(
            update(m)
            .where(m.id.in_(dead))
            .values(status="failed", failed_at=now, lease_until=None)
            .execution_options(synchronize_session=False)
        )
    return Claimed(claims, skipped)
