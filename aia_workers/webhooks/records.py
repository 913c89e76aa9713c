"""Recording attempts: what each reply means for its message, and writing many at once.

``decide`` is pure: the next state of a message after one attempt (delivered,
due again after the backoff schedule or Retry-After, or failed for good).
``record`` writes a group of decided attempts in a handful of statements,
whatever the group's size: one insert of the attempt log, one update per
kind of outcome, and one per endpoint whose health changed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, or_, update
from sqlalchemy.orm import Session

from aia_workers.db.base import UTCDateTime
from aia_workers.db.identity import AuditEvent
from aia_workers.db.webhooks import WebhookAttempt, WebhookEndpoint, WebhookMessage
from aia_workers.webhooks.claims import Claim
from aia_workers.webhooks.http import Reply

__all__ = ["Attempted", "decide", "record"]

_RETRIED = "scheduled"
_JITTER = 0.2
_SUCCESS_RESOLUTION = timedelta(seconds=1)
# A Retry-After longer than this is taken as this: a receiver cannot park a message forever.
_MAX_RETRY_AFTER_SECONDS = 86_400.0

# Built once: on the tables rather than the ORM classes, executed for many rows
# at once, they skip the ORM's bulk bookkeeping and the statement's building
# and cache-key work on every group of replies (bench/webhook_delivery.py).
_messages = cast(Table, WebhookMessage.__table__)
# Each message's outcome by its id, in one statement executed for every row:
# the stamp a status does not set is left as it was.
_RECORDED = (
    update(_messages)
    .where(_messages.c.id == bindparam("_id"))
    .values(
        status=bindparam("status"),
        attempts=bindparam("attempts"),
        lease_until=None,
        delivered_at=func.coalesce(
            bindparam("_delivered_at", type_=UTCDateTime()), _messages.c.delivered_at
        ),
        failed_at=func.coalesce(
            bindparam("_failed_at", type_=UTCDateTime()), _messages.c.failed_at
        ),
        next_attempt_at=func.coalesce(
            bindparam("_next_attempt_at", type_=UTCDateTime()), _messages.c.next_attempt_at
        ),
    )
)
_LOGGED = insert(cast(Table, WebhookAttempt.__table__))


@dataclass(frozen=True, slots=True)
class Attempted:
    """One attempt made and what it leads to; not yet written."""

    claim: Claim
    reply: Reply
    # "delivered", "pending" (due again at next_attempt_at) or "failed".
    status: str
    next_attempt_at: datetime | None
    at: datetime

    @property
    def ok(self) -> bool:
        return self.status == "delivered"

    @property
    def gone(self) -> bool:
        return self.reply.status == 410

    def outcome(self) -> dict[str, Any]:
        """What the task reports for this message (JSON-safe)."""
        return {
            "message_id": self.claim.message_id,
            "attempt": self.claim.attempt,
            "status_code": self.reply.status,
            "status": self.status,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
        }


def _next_delay(schedule: Sequence[float], attempt: int, retry_after: float | None) -> float | None:
    """Seconds until the next try after failed attempt number ``attempt``, or None: give up."""
    if attempt > len(schedule):
        return None
    delay = schedule[attempt - 1] * random.uniform(1 - _JITTER, 1 + _JITTER)
    if retry_after is not None:
        # The receiver said when it can take more: not before then.
        delay = max(delay, min(retry_after, _MAX_RETRY_AFTER_SECONDS))
    return delay


def decide(schedule: Sequence[float], claim: Claim, reply: Reply, now: datetime) -> Attempted:
    """What ``reply`` to ``claim``'s attempt means for its message, as of ``now``.

    Only scheduled deliveries are retried, on ``schedule`` (seconds after
    each failed attempt); a manual resend or a replay is tried once.
    """
    if reply.status is not None and 200 <= reply.status < 300:
        return Attempted(claim, reply, "delivered", None, now)
    delay = (
        None
        if reply.status == 410 or claim.trigger != _RETRIED
        else _next_delay(schedule, claim.attempt, reply.retry_after_seconds)
    )
    if delay is None:
        return Attempted(claim, reply, "failed", None, now)
    return Attempted(claim, reply, "pending", now + timedelta(seconds=delay), now)


def record(
    session: Session, attempts: Sequence[Attempted], *, disable_after_seconds: float
) -> None:
    """Write ``attempts``: the attempt log, each message's new state, the endpoints' health.

    An endpoint failing for ``disable_after_seconds`` (or answering 410 Gone)
    is disabled, with an audit event saying why.
    """
    if not attempts:
        return
    now = max(a.at for a in attempts)
    e = WebhookEndpoint
    healthy = {a.claim.endpoint_id for a in attempts if a.ok}
    if healthy:
        # Every delivery to an endpoint would otherwise queue on its row's
        # lock; a healthy endpoint's row is touched at most once a second.
        session.execute(
            update(e)
            .where(
                e.id.in_(healthy),
                or_(
                    e.failing_since.is_not(None),
                    e.last_success_at.is_(None),
                    e.last_success_at < now - _SUCCESS_RESOLUTION,
                ),
            )
            .values(last_success_at=now, failing_since=None)
            .execution_options(synchronize_session=False)
        )
    failures: dict[str, list[Attempted]] = {}
    for a in attempts:
        if not a.ok:
            failures.setdefault(a.claim.endpoint_id, []).append(a)
    for endpoint_id, failed in sorted(failures.items()):
        _endpoint_failed(session, endpoint_id, failed, now, disable_after_seconds)
    session.execute(
        _RECORDED,
        [
            {
                "_id": a.claim.message_id,
                "status": a.status,
                "attempts": a.claim.attempt,
                "_delivered_at": a.at if a.status == "delivered" else None,
                "_failed_at": a.at if a.status == "failed" else None,
                "_next_attempt_at": a.next_attempt_at if a.status == "pending" else None,
            }
            for a in attempts
        ],
    )
    session.execute(
        _LOGGED,
        [
            {
                "id": str(uuid.uuid4()),
                "tenant_id": a.claim.tenant,
                "endpoint_id": a.claim.endpoint_id,
                "message_id": a.claim.message_id,
                "attempt": a.claim.attempt,
                "trigger": a.claim.trigger,
                "url": a.claim.url,
                "status_code": a.reply.status,
                "duration_ms": a.reply.duration_ms,
                "response_body": a.reply.body or None,
                "error": a.reply.error[:2000] if a.reply.error else None,
                "succeeded": a.ok,
                "next_attempt_at": a.next_attempt_at,
                "created_at": a.at,
            }
            for a in attempts
        ],
    )


def _endpoint_failed(
    session: Session,
    endpoint_id: str,
    failed: Sequence[Attempted],
    now: datetime,
    disable_after_seconds: float,
) -> None:
    e = WebhookEndpoint
    state = session.execute(
        update(e)
        .where(e.id == endpoint_id)
        .values(failing_since=func.coalesce(e.failing_since, now))
        .returning(e.failing_since, e.enabled)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if state is None or not state.enabled:
        return
    claim = failed[0].claim
    failing_for = (now - state.failing_since).total_seconds()
    if any(a.gone for a in failed):
        _disable(session, claim, now, "the endpoint answered 410 Gone")
    elif failing_for >= disable_after_seconds:
        days = failing_for / 86_400
        _disable(session, claim, now, f"no successful delivery for {days:.1f} days")


def _disable(session: Session, claim: Claim, now: datetime, reason: str) -> None:
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == claim.endpoint_id)
        .values(enabled=False, disabled_reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    # The notice a person looks for when deliveries stop: in the audit log.
    session.add(
        AuditEvent(
            id=str(uuid.uuid4()),
            tenant_id=claim.tenant,
            actor="system:webhooks",
            action="endpoint.disabled",
            outcome="success",
            detail={"endpoint_id": claim.endpoint_id, "url": claim.url, "reason": reason},
            created_at=now,
        )
    )
