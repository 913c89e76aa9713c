"""The relay: hands due outbox rows to delivery tasks, and rescues ones lost with a worker.

It runs as a thread in each webhooks worker. Each pass leases the messages
that are due (new, retrying, or sending under a lease that ran out) so two
relays never hand out the same one, then sends a task per message. It looks
again when a publisher pings ``WAKE_CHANNEL`` or after ``interval_seconds``.

A leased message is in flight until its attempt is recorded or its lease
runs out. Each tenant has at most ``tenant_max_inflight`` in flight; the rest
stay in the outbox, so the broker queue and the workers' threads never fill
with one tenant's deliveries while another's wait behind them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import and_, false, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.models import WebhookMessage
from aia_workers.webhooks.outbox import WAKE_CHANNEL

__all__ = ["Relay", "lease_due"]

log = logging.getLogger(__name__)

_BATCH = 500
_LEASE_LOCK = "aia:webhooks:relay"


def _one_pass_at_a_time(session: Session) -> None:
    """Hold other relays' passes until this one commits.

    A pass counts what is in flight and leases more: two at once would both
    fill the same tenant's room, or hand out the same message twice.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(_LEASE_LOCK, 0))))
    else:
        # SQLite reads outside any transaction until the first write: a write
        # that changes nothing takes the database's write lock now instead.
        session.execute(update(WebhookMessage).where(false()).values(status=WebhookMessage.status))


def lease_due(
    session: Session,
    *,
    now: datetime,
    lease_seconds: float,
    tenant_max_inflight: int,
    limit: int = _BATCH,
) -> list[tuple[str, str]]:
    """Lease the messages due now; their (id, tenant) pairs, oldest due first.

    A tenant gets no more than ``tenant_max_inflight`` less what it has in
    flight already (leased, or being sent, under a lease not yet run out).
    """
    m = WebhookMessage
    _one_pass_at_a_time(session)
    unleased = or_(m.lease_until.is_(None), m.lease_until < now)
    due = (
        select(
            m.id,
            m.tenant_id,
            m.next_attempt_at,
            func.row_number()
            .over(partition_by=m.tenant_id, order_by=(m.next_attempt_at, m.id))
            .label("rank"),
        )
        .where(
            or_(
                and_(m.status == "pending", m.next_attempt_at <= now, unleased),
                # Its worker died mid-attempt; the same message goes again.
                and_(m.status == "sending", m.lease_until < now),
            )
        )
        .subquery()
    )
    inflight = (
        select(m.tenant_id, func.count().label("count"))
        .where(m.status.in_(("pending", "sending")), m.lease_until >= now)
        .group_by(m.tenant_id)
        .subquery()
    )
    stmt = (
        select(due.c.id, due.c.tenant_id)
        .select_from(due.outerjoin(inflight, inflight.c.tenant_id == due.c.tenant_id))
        .where(due.c.rank + func.coalesce(inflight.c.count, 0) <= tenant_max_inflight)
        .order_by(due.c.next_attempt_at, due.c.id)
        .limit(limit)
    )
    leased = [(row.id, row.tenant_id) for row in session.execute(stmt)]
    if leased:
        # A rescued message is due again like any other: pending, and leased
        # to the task about to be sent for it.
        session.execute(
            update(m)
            .where(m.id.in_([ident for ident, _ in leased]))
            .values(status="pending", lease_until=now + timedelta(seconds=lease_seconds))
        )
    return leased


class Relay(threading.Thread):
    """Polls the outbox and calls ``send([(message_id, tenant), ...])`` with the due messages."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: redis.Redis,
        send: Callable[[Sequence[tuple[str, str]]], None],
        *,
        interval_seconds: float,
        lease_seconds: float,
        tenant_max_inflight: int,
    ) -> None:
        super().__init__(name="aia-webhook-relay", daemon=True)
        self._sessions = sessions
        self._redis = client
        self._send = send
        self._interval = interval_seconds
        self._lease = lease_seconds
        self._tenant_max_inflight = tenant_max_inflight
        self._stopping = threading.Event()
        self.sent = 0

    def stop(self) -> None:
        self._stopping.set()

    def pass_once(self) -> int:
        """One look at the outbox; how many messages it handed out."""
        with self._sessions.begin() as session:
            due = lease_due(
                session,
                now=datetime.now(UTC),
                lease_seconds=self._lease,
                tenant_max_inflight=self._tenant_max_inflight,
            )
        if due:
            self._send(due)
        self.sent += len(due)
        return len(due)

    def run(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(WAKE_CHANNEL)
        except redis.RedisError:
            log.warning("webhook relay: no wake-ups from Redis; polling only", exc_info=True)
        while not self._stopping.is_set():
            try:
                if self.pass_once() >= _BATCH:
                    continue
            except Exception:
                # The broker (kombu's OperationalError while it is away), the
                # database or Redis: whatever failed, the leased messages go
                # back to pending when their lease runs out, and only a relay
                # that is still running hands them out again.
                log.exception("webhook relay: pass failed; trying again")
            self._wait(pubsub)
        pubsub.close()

    def _wait(self, pubsub: redis.client.PubSub) -> None:
        try:
            if pubsub.subscribed:
                pubsub.get_message(timeout=self._interval)
                # Many pings collapse into one pass.
                while pubsub.get_message(timeout=0) is not None:
                    pass
                return
        except redis.RedisError:
            log.warning("webhook relay: lost the wake-up channel", exc_info=True)
        self._stopping.wait(self._interval)
