"""The webhook outbox on SQLite and PostgreSQL: fan-out, dedupe, recorder events, leases."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import redis
import sqlalchemy.exc
from kombu.exceptions import OperationalError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.backbone.history_writer import apply_rows, merge_events
from aia_workers.db.migrate import upgrade
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.db.webhooks import WebhookEndpoint, WebhookMessage
from aia_workers.settings import Settings
from aia_workers.webhooks.outbox import WAKE_CHANNEL, publish, publish_many
from aia_workers.webhooks.relay import Leased, Relay, lease_due
from aia_workers.webhooks.task_events import task_finished_events
from tests.support import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def sessions(database_url: str, tmp_path) -> Iterator[sessionmaker[Session]]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine: Engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


def _endpoint(sessions: sessionmaker[Session], tenant: str, events: list[str], **kw) -> str:
    now = datetime.now(UTC)
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()),
        tenant_id=tenant,
        url="https://example.com/hook",
        events=events,
        enabled=kw.get("enabled", True),
        secret="whsec_" + "A" * 44,
        created_at=now,
        updated_at=now,
    )
    with sessions.begin() as session:
        session.add(endpoint)
    return endpoint.id


def _messages(sessions: sessionmaker[Session]) -> list[WebhookMessage]:
    with sessions() as session:
        return list(session.scalars(select(WebhookMessage).order_by(WebhookMessage.created_at)))


def test_fan_out_to_subscribed_enabled_endpoints_of_the_tenant(
    sessions: sessionmaker[Session],
) -> None:
    wanted = _endpoint(sessions, "t1", ["task.failed", "task.succeeded"])
    _endpoint(sessions, "t1", ["task.succeeded"])  # not subscribed to task.failed
    _endpoint(sessions, "t1", ["task.failed"], enabled=False)
    _endpoint(sessions, "t2", ["task.failed"])  # another tenant
    payload = {"task_id": "x", "type": "diagnostics.sleep", "queue": "default", "status": "failed"}
    with sessions.begin() as session:
        created = publish(session, "t1", "task.failed", payload, dedupe_key="task.failed:x")
        # The same event again (a replayed batch) adds nothing.
        assert publish(session, "t1", "task.failed", payload, dedupe_key="task.failed:x") == []
    [message] = _messages(sessions)
    assert created == [message.id]
    assert message.endpoint_id == wanted
    assert message.id.startswith("msg_")
    assert message.status == "pending"
    assert message.payload["task_id"] == "x"


def test_a_rolled_back_change_publishes_nothing(sessions: sessionmaker[Session]) -> None:
    _endpoint(sessions, "t1", ["task.failed"])
    payload = {"task_id": "x", "type": "t", "queue": "default", "status": "failed"}

    def change_that_fails() -> None:
        with sessions.begin() as session:
            publish(session, "t1", "task.failed", payload)
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        change_that_fails()
    assert _messages(sessions) == []


def test_the_recorder_announces_each_ended_task_once(sessions: sessionmaker[Session]) -> None:
    _endpoint(sessions, "t1", ["task.succeeded", "task.cancelled"])

    def entry(task: str, seq: int, event: str, status: str, data: dict | None = None) -> dict:
        body = {
            "task_id": task,
            "seq": seq,
            "event": event,
            "status": status,
            "time": 1_800_000_000 + seq,
            "data": data or {},
        }
        return {
            "task": task,
            "tenant": "t1",
            "type": "diagnostics.sleep",
            "queue": "default",
            "e": json.dumps(body),
        }

    batch = [
        entry("a", 1, "queued", "queued"),
        entry("a", 2, "succeeded", "succeeded", {"result": {"slept": 1}}),
        entry("b", 1, "queued", "queued"),
        entry("c", 1, "queued", "queued"),
        entry("c", 2, "cancelled", "cancelled"),
    ]
    for _ in range(2):  # delivered twice, as a stream may
        with sessions.begin() as session:
            rows = merge_events(batch)
            apply_rows(session, rows)
            publish_many(session, task_finished_events(rows))
    messages = _messages(sessions)
    assert sorted((m.event_type, m.payload["task_id"]) for m in messages) == [
        ("task.cancelled", "c"),
        ("task.succeeded", "a"),
    ]
    succeeded = next(m for m in messages if m.event_type == "task.succeeded")
    assert succeeded.payload["result"] == {"slept": 1}


def test_leases_hand_each_due_message_out_once(sessions: sessionmaker[Session]) -> None:
    _endpoint(sessions, "t1", ["task.failed"])
    payload = {"task_id": "x", "type": "t", "queue": "default", "status": "failed"}
    with sessions.begin() as session:
        [ident] = publish(session, "t1", "task.failed", payload)
    now = datetime.now(UTC) + timedelta(seconds=1)
    with sessions.begin() as session:
        first = lease_due(session, now=now, lease_seconds=10, tenant_max_inflight=5)
    assert first == Leased([(ident, "t1")], held_back=False)
    with sessions.begin() as session:
        assert lease_due(session, now=now, lease_seconds=10, tenant_max_inflight=5).messages == []
    # A worker died with it "sending": once the lease runs out it goes again.
    with sessions.begin() as session:
        session.get(WebhookMessage, ident).status = "sending"
    with sessions.begin() as session:
        again = lease_due(
            session, now=now + timedelta(seconds=11), lease_seconds=10, tenant_max_inflight=5
        )
    assert again.messages == [(ident, "t1")]
    with sessions() as session:
        assert session.get(WebhookMessage, ident).status == "pending"


def _publish_tests(
    sessions: sessionmaker[Session], tenant: str, endpoint: str, n: int
) -> list[str]:
    created = []
    for i in range(n):
        with sessions.begin() as session:
            created += publish(
                session,
                tenant,
                "webhook.test",
                {"endpoint_id": endpoint, "message": str(i)},
                endpoint_id=endpoint,
            )
    return created


def test_each_tenant_has_at_most_so_many_deliveries_in_flight(
    sessions: sessionmaker[Session],
) -> None:
    busy = _publish_tests(sessions, "busy", _endpoint(sessions, "busy", ["task.failed"]), 5)
    quiet = _publish_tests(sessions, "quiet", _endpoint(sessions, "quiet", ["task.failed"]), 1)
    now = datetime.now(UTC) + timedelta(seconds=1)

    held: list[bool] = []

    def lease(at: datetime) -> list[tuple[str, str]]:
        with sessions.begin() as session:
            leased = lease_due(session, now=at, lease_seconds=10, tenant_max_inflight=2)
        held.append(leased.held_back)
        return leased.messages

    # The busy tenant's oldest two, and the quiet tenant's one behind them.
    assert sorted(lease(now)) == sorted([(busy[0], "busy"), (busy[1], "busy"), (quiet[0], "quiet")])
    # Both its deliveries still in flight, the busy tenant's others wait.
    assert lease(now) == []
    assert held == [True, True]
    # One is being sent, the other's attempt was recorded: one more may go.
    with sessions.begin() as session:
        session.get(WebhookMessage, busy[0]).status = "sending"
        done = session.get(WebhookMessage, busy[1])
        done.status, done.lease_until = "delivered", None
    assert lease(now) == [(busy[2], "busy")]
    # Leases that ran out are no longer in flight: their messages go again first.
    later = now + timedelta(seconds=11)
    again = [(busy[0], "busy"), (busy[2], "busy"), (quiet[0], "quiet")]
    assert sorted(lease(later)) == sorted(again)
    assert lease(later) == []
    # Those delivered, the busy tenant's last two go and nothing is held back.
    with sessions.begin() as session:
        for ident, _ in again:
            sent = session.get(WebhookMessage, ident)
            sent.status, sent.lease_until = "delivered", None
    assert sorted(lease(later)) == sorted([(busy[3], "busy"), (busy[4], "busy")])
    assert held[-1] is False


def test_many_tenants_are_ranked_in_one_query_and_each_held_to_its_room(
    sessions: sessionmaker[Session],
) -> None:
    # More tenants with room than the per-tenant reads are for: one ranking
    # query leases for all of them, and still no tenant gets past its cap.
    tenants = [f"t{i}" for i in range(10)]
    published = {
        tenant: _publish_tests(sessions, tenant, _endpoint(sessions, tenant, ["task.failed"]), 3)
        for tenant in tenants
    }
    now = datetime.now(UTC) + timedelta(seconds=1)
    with sessions.begin() as session:
        # One of t0's is already in flight: it has room for one more only.
        session.get(WebhookMessage, published["t0"][0]).lease_until = now + timedelta(seconds=5)
    with sessions.begin() as session:
        leased = lease_due(session, now=now, lease_seconds=10, tenant_max_inflight=2)
    assert leased.held_back is True
    by_tenant: dict[str, list[str]] = {}
    for ident, tenant in leased.messages:
        by_tenant.setdefault(tenant, []).append(ident)
    assert by_tenant.pop("t0") == [published["t0"][1]]
    # Every other tenant gets its oldest two, whatever its place in the backlog.
    assert by_tenant == {tenant: published[tenant][:2] for tenant in tenants[1:]}
    with sessions.begin() as session:
        assert lease_due(session, now=now, lease_seconds=10, tenant_max_inflight=2).messages == []


def test_a_lease_can_be_limited_to_some_tenants_and_to_untraced_messages(
    sessions: sessionmaker[Session],
) -> None:
    mine = _publish_tests(sessions, "mine", _endpoint(sessions, "mine", ["task.failed"]), 3)
    other = _publish_tests(sessions, "other", _endpoint(sessions, "other", ["task.failed"]), 1)
    with sessions.begin() as session:
        session.get(
            WebhookMessage, mine[0]
        ).traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    now = datetime.now(UTC) + timedelta(seconds=1)
    with sessions.begin() as session:
        leased = lease_due(
            session,
            now=now,
            lease_seconds=10,
            tenant_max_inflight=5,
            tenants={"mine"},
            untraced=True,
        )
    assert leased.messages == [(mine[1], "mine"), (mine[2], "mine")]
    with sessions.begin() as session:
        rest = lease_due(session, now=now, lease_seconds=10, tenant_max_inflight=5)
    assert sorted(rest.messages) == sorted([(mine[0], "mine"), (other[0], "other")])
    assert set(rest.traces) == {mine[0]}


def test_relays_leasing_at_once_share_a_tenant_s_room(sessions: sessionmaker[Session]) -> None:
    busy = _publish_tests(sessions, "busy", _endpoint(sessions, "busy", ["task.failed"]), 8)
    now = datetime.now(UTC) + timedelta(seconds=1)
    relays = 6
    start = threading.Barrier(relays)
    handed_out: list[str] = []
    lock = threading.Lock()

    def relay_pass() -> None:
        start.wait()
        try:
            with sessions.begin() as session:
                leased = lease_due(session, now=now, lease_seconds=10, tenant_max_inflight=3)
        except sqlalchemy.exc.OperationalError:
            # SQLite: a pass that lost the race to write leases nothing; the
            # relay tries again on its next pass.
            return
        with lock:
            handed_out.extend(ident for ident, _ in leased.messages)

    threads = [threading.Thread(target=relay_pass) for _ in range(relays)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Each message once, and never more than the tenant's room.
    assert sorted(handed_out) == sorted(busy[:3])


def test_a_finished_attempt_lets_the_relay_hand_out_a_held_message_at_once(
    sessions: sessionmaker[Session], redis_url: str
) -> None:
    busy = _publish_tests(sessions, "busy", _endpoint(sessions, "busy", ["task.failed"]), 4)
    handed_out: list[str] = []
    relay: Relay

    def finish(ident: str) -> None:
        with sessions.begin() as session:
            sent = session.get(WebhookMessage, ident)
            sent.status, sent.lease_until = "delivered", None
        relay.poke()

    def send(due: Sequence[tuple[str, str]], _traces: object) -> None:
        for ident, _ in due:
            handed_out.append(ident)
            # As a worker would: the attempt ends a moment later, elsewhere.
            threading.Thread(target=finish, args=(ident,)).start()

    relay = Relay(
        sessions,
        redis.Redis.from_url(redis_url),
        send,
        # Far longer than the test: only the pokes can hand out the rest.
        interval_seconds=60,
        lease_seconds=30,
        tenant_max_inflight=1,
    )
    relay.start()
    try:
        wait_for(lambda: len(handed_out) == 4, 10, 0.05, "every message, one at a time")
    finally:
        relay.stop()
        redis.Redis.from_url(redis_url).publish(WAKE_CHANNEL, 1)
        relay.join(5)
    assert handed_out == busy


def test_the_relay_outlives_a_broker_outage(
    sessions: sessionmaker[Session], redis_url: str
) -> None:
    _endpoint(sessions, "t1", ["task.failed"])
    payload = {"task_id": "x", "type": "t", "queue": "default", "status": "failed"}
    with sessions.begin() as session:
        [ident] = publish(session, "t1", "task.failed", payload)
    handed_out: list[str] = []

    def send(due: Sequence[tuple[str, str]], _traces: object) -> None:
        if not handed_out:
            handed_out.append("refused")
            raise OperationalError("the broker is away")  # what kombu raises then
        handed_out.extend(message_id for message_id, _ in due)

    relay = Relay(
        sessions,
        redis.Redis.from_url(redis_url),
        send,
        interval_seconds=0.05,
        lease_seconds=0.2,
        tenant_max_inflight=5,
    )
    relay.start()
    try:
        wait_for(lambda: ident in handed_out, 10, 0.05, "the message once the broker is back")
        assert relay.is_alive()
    finally:
        relay.stop()
        relay.join(5)
