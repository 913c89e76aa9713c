"""The relay: hands due outbox rows to delivery tasks, and rescues ones lost with a worker.

It runs as a thread in each webhooks worker. Each pass leases the messages
that are due (new, retrying, or sending under a lease that ran out) so two
relays never hand out the same one, then sends a task per message. It looks
again when a publisher pings ``WAKE_CHANNEL`` or after ``interval_seconds``.

A leased message is in flight until its attempt is recorded or its lease
runs out. Each tenant has at most ``tenant_max_inflight`` in flight; the rest
stay in the outbox, so the broker queue and the workers' threads never fill
with one tenant's deliveries while another's wait behind them. While a pass
held some back, each finished attempt pokes its own process's relay, so a
busy tenant's next message goes as soon as there is room, not at the next poll.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import ColumnElement, and_, false, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.webhooks import WebhookMessage
from aia_workers.webhooks.outbox import WAKE_CHANNEL

__all__ = ["Leased", "Relay", "due_at", "lease_due", "one_pass_at_a_time"]

log = logging.getLogger(__name__)

_BATCH = 500
_LEASE_LOCK = "aia:webhooks:relay"
_GATHER_SECONDS = 0.005
_FEW_TENANTS = 8


def one_pass_at_a_time(session: Session) -> None:
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


def due_at(now: datetime | ColumnElement[datetime]) -> Any:
    """Which messages are due at ``now`` and held by no live lease."""
    m = WebhookMessage
    unleased = or_(m.lease_until.is_(None), m.lease_until < now)
    return or_(
        and_(m.status == "pending", m.next_attempt_at <= now, unleased),
        # Its worker died mid-attempt; the same message goes again.
        and_(m.status == "sending", m.lease_until < now),
    )


@dataclass(frozen=True, slots=True)
class Leased:
    """What one pass leased: (message id, tenant) pairs, oldest due first."""

    messages: list[tuple[str, str]]
    # Whether some tenant had more due than it had room for.
    held_back: bool
    # The traceparent of each traced message, by id: its delivery task's run
    # continues that trace.
    traces: Mapping[str, str] = field(default_factory=dict)


def lease_due(
    session: Session,
    *,
    now: datetime,
    lease_seconds: float,
    tenant_max_inflight: int,
    limit: int = _BATCH,
    few_tenants: int = _FEW_TENANTS,
    tenants: Collection[str] | None = None,
    untraced: bool = False,
) -> Leased:
    """Lease the messages due now.

    A tenant gets no more than ``tenant_max_inflight`` less what it has in
    flight already (leased, or being sent, under a lease not yet run out).
    When at most ``few_tenants`` tenants have both room and messages due,
    each one's oldest are read by a query of its own; otherwise one query
    ranks every due message by tenant. ``tenants`` limits the lease to those
    tenants' messages, ``untraced`` to messages with no trace to continue.
    """
    m = WebhookMessage
    one_pass_at_a_time(session)
    due_now = due_at(now)
    live = and_(m.status.in_(("pending", "sending")), m.lease_until >= now)
    if tenants is not None:
        due_now = and_(m.tenant_id.in_(tenants), due_now)
        live = and_(m.tenant_id.in_(tenants), live)
    if untraced:
        due_now = and_(m.traceparent.is_(None), due_now)
    inflight: dict[str, int] = {
        tenant: int(count)
        for tenant, count in session.execute(
            select(m.tenant_id, func.count()).where(live).group_by(m.tenant_id)
        )
    }
    waiting = session.scalars(select(m.tenant_id).where(due_now).group_by(m.tenant_id)).all()
    room = {tenant: tenant_max_inflight - inflight.get(tenant, 0) for tenant in waiting}
    open_tenants = [tenant for tenant, left in room.items() if left > 0]
    chosen: list[Any] = []
    if len(open_tenants) > few_tenants:
        rows = _ranked(session, due_now, now, tenant_max_inflight, limit)
        chosen += (row for row in rows if row.slot <= tenant_max_inflight)
        held_back = len(chosen) < len(rows)
    else:
        # A backlog of thousands is ranked whole by the one query on each
        # pass (30 ms on SQLite for 4,000 messages); each tenant's oldest few
        # come from a top-N sort instead (about 1 ms).
        held_back = len(open_tenants) < len(waiting)
        for tenant in open_tenants:
            found = session.execute(
                select(m.id, m.tenant_id, m.traceparent, m.next_attempt_at)
                .where(m.tenant_id == tenant, due_now)
                .order_by(m.next_attempt_at, m.id)
                .limit(room[tenant] + 1)
            ).all()
            held_back = held_back or len(found) > room[tenant]
            chosen += found[: room[tenant]]
        chosen.sort(key=lambda row: (row.next_attempt_at, row.id))
        held_back = held_back or len(chosen) > limit
        chosen = chosen[:limit]
    leased = [(row.id, row.tenant_id) for row in chosen]
    traces = {row.id: row.traceparent for row in chosen if row.traceparent}
    if leased:
        # A rescued message is due again like any other: pending, and leased
        # to the task about to be sent for it.
        session.execute(
            update(m)
            .where(m.id.in_([ident for ident, _ in leased]))
            .values(status="pending", lease_until=now + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
    return Leased(leased, held_back=held_back, traces=traces)


def _ranked(
    session: Session, due_now: Any, now: datetime, tenant_max_inflight: int, limit: int
) -> Sequence[Any]:
    """Every tenant's due messages within its room, and one past it, oldest due first."""
    m = WebhookMessage
    due = (
        select(
            m.id,
            m.tenant_id,
            m.next_attempt_at,
            m.traceparent,
            func.row_number()
            .over(partition_by=m.tenant_id, order_by=(m.next_attempt_at, m.id))
            .label("rank"),
        )
        .where(due_now)
        .subquery()
    )
    inflight = (
        select(m.tenant_id, func.count().label("count"))
        .where(m.status.in_(("pending", "sending")), m.lease_until >= now)
        .group_by(m.tenant_id)
        .subquery()
    )
    slot = (due.c.rank + func.coalesce(inflight.c.count, 0)).label("slot")
    stmt = (
        select(due.c.id, due.c.tenant_id, due.c.traceparent, slot)
        .select_from(due.outerjoin(inflight, inflight.c.tenant_id == due.c.tenant_id))
        # One past the room, to learn whether the tenant has more waiting.
        .where(slot <= tenant_max_inflight + 1)
        .order_by(due.c.next_attempt_at, due.c.id)
        .limit(limit)
    )
    return session.execute(stmt).all()


class Relay(threading.Thread):
    """Polls the outbox and calls ``send([(message_id, tenant), ...], traces)`` with the due
    messages and the traceparents of those that have one."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: redis.Redis,
        send: Callable[[Sequence[tuple[str, str]], Mapping[str, str]], None],
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
        # Pokes reach this relay only, not every webhooks worker's.
        self._own_channel = f"{WAKE_CHANNEL}:{uuid.uuid4().hex}"
        self._held_back = False
        self.sent = 0

    def stop(self) -> None:
        self._stopping.set()

    def poke(self) -> None:
        """Look again now if the last pass held messages back: an attempt just made room."""
        if self._held_back:
            with contextlib.suppress(redis.RedisError):
                self._redis.publish(self._own_channel, 1)

    def pass_once(self) -> int:
        """One look at the outbox; how many messages it handed out."""
        with self._sessions.begin() as session:
            leased = lease_due(
                session,
                now=datetime.now(UTC),
                lease_seconds=self._lease,
                tenant_max_inflight=self._tenant_max_inflight,
            )
        self._held_back = leased.held_back
        if leased.messages:
            self._send(leased.messages, leased.traces)
        self.sent += len(leased.messages)
        return len(leased.messages)

    def run(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(WAKE_CHANNEL, self._own_channel)
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
                woken = pubsub.get_message(timeout=self._interval)
                if woken is not None and self._held_back:
                    # Pokes come one per finished attempt: gathered for a
                    # moment, they lease several messages a pass, not one.
                    self._stopping.wait(_GATHER_SECONDS)
                # Many pings collapse into one pass.
                while pubsub.get_message(timeout=0) is not None:
                    pass
                return
        except redis.RedisError:
            log.warning("webhook relay: lost the wake-up channel", exc_info=True)
        self._stopping.wait(self._interval)
