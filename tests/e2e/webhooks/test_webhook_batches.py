"""Deliveries in batches: messages leased together go in one task, and each one's fate is its own.

The messages are written to the outbox in one transaction, as a burst of
events would be, so that one relay pass leases them all and one
``webhooks.deliver_batch`` task carries them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.db.webhooks import WebhookEndpoint
from aia_workers.secretbox import SecretBox, new_key
from aia_workers.settings import Settings
from aia_workers.webhooks.outbox import WAKE_CHANNEL, publish
from tests.e2e.webhooks.env import QUICK_WEBHOOKS
from tests.e2e.webhooks.listing import endpoint_attempts, endpoint_messages
from tests.support import Stack, private_stack, wait_for
from tests.webhook_receiver import Receiver, ReplySpec

pytestmark = pytest.mark.e2e

_ENV = {
    **QUICK_WEBHOOKS,
    # A lost message goes again once its lease (this + 10 s) runs out.
    "AIA_WEBHOOK_DEADLINE_SECONDS": "3",
}


def _webhooks_stack(tmp_path: Path, redis_url: str, env: dict[str, str]) -> Iterator[Stack]:
    built = private_stack(tmp_path, redis_url, role="admin", env=env)
    try:
        built.start_worker("webhooks", "webhooks", pool="threads", concurrency=2)
        yield built
    finally:
        built.stop()


@pytest.fixture
def stack(tmp_path: Path, redis_url: str) -> Iterator[Stack]:
    yield from _webhooks_stack(tmp_path, redis_url, _ENV)


@pytest.fixture
def sessions(stack: Stack) -> Iterator[sessionmaker[Session]]:
    settings = Settings(
        database_url=stack.env["AIA_DATABASE_URL"], data_home=stack.workdir, dev=True
    )
    engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


def _endpoint(client: httpx.Client, url: str) -> dict[str, Any]:
    response = client.post("/v1/webhooks", json={"url": url, "events": ["task.failed"]})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _burst(
    stack: Stack, sessions: sessionmaker[Session], endpoints: list[dict[str, Any]], each: int = 1
) -> dict[str, list[str]]:
    """``each`` test messages per endpoint in one transaction, then the relay woken."""
    with sessions.begin() as session:
        ids = {
            e["id"]: [
                ident
                for i in range(each)
                for ident in publish(
                    session,
                    "default",
                    "webhook.test",
                    {"endpoint_id": e["id"], "message": str(i)},
                    endpoint_id=e["id"],
                )
            ]
            for e in endpoints
        }
    client = redis.Redis.from_url(stack.redis_url)
    try:
        client.publish(WAKE_CHANNEL, 1)
    finally:
        client.close()
    return ids


def _statuses(client: httpx.Client, endpoint: dict[str, Any]) -> list[str]:
    return sorted(m["status"] for m in endpoint_messages(client, endpoint))


def test_one_batch_s_good_receiver_is_served_while_others_hang_or_fail(
    stack: Stack, sessions: sessionmaker[Session]
) -> None:
    with Receiver() as good, Receiver() as hanging, Receiver() as failing, stack.client() as client:
        hanging.respond(ReplySpec(hang=True))
        failing.respond(ReplySpec(500))
        ok, stuck, bad = (_endpoint(client, r.url) for r in (good, hanging, failing))
        ids = _burst(stack, sessions, [ok, stuck, bad], each=3)
        # The good receiver's three are recorded while the hanging one still
        # holds its attempt: a batch does not wait for its slowest message.
        wait_for(lambda: _statuses(client, ok) == ["delivered"] * 3, 20, 0.1, "the good three")
        assert len(hanging.requests) >= 1
        assert "sending" in _statuses(client, stuck)
        # The failing receiver's 500 is an attempt of its own, retried on schedule.
        wait_for(lambda: _statuses(client, bad) == ["delivered"] * 3, 20, 0.1, "the retries")
        # Recorded when its reply was read, which another request of the batch can beat.
        [refused] = [a for a in endpoint_attempts(client, bad) if a["status_code"] == 500]
        assert refused["next_attempt_at"] is not None
        # The hanging one is cut at its deadline and its retry delivered.
        wait_for(lambda: _statuses(client, stuck) == ["delivered"] * 3, 30, 0.1, "the cut one")
        cut = [a for a in endpoint_attempts(client, stuck) if not a["succeeded"]]
        assert [a["error"] for a in cut] == [
            "deadline exceeded: no complete reply within 3 s (AIA_WEBHOOK_DEADLINE_SECONDS)"
        ]
        for receiver, endpoint in ((good, ok), (hanging, stuck), (failing, bad)):
            assert {r.headers["webhook-id"] for r in receiver.requests} == set(ids[endpoint["id"]])
            assert len(endpoint_attempts(client, endpoint)) == len(receiver.requests)


def test_a_worker_killed_mid_batch_delivers_every_message_after_the_lease(
    stack: Stack, sessions: sessionmaker[Session]
) -> None:
    with Receiver() as receiver, stack.client() as client:
        # Every request of the first batch hangs, so the worker dies holding all of them.
        receiver.respond(*[ReplySpec(hang=True)] * 5)
        endpoint = _endpoint(client, receiver.url)
        [ids] = _burst(stack, sessions, [endpoint], each=5).values()
        receiver.wait_for_requests(5, timeout=20)
        worker = next(p for p in stack.processes if p.name == "worker-webhooks")
        os.killpg(worker.popen.pid, signal.SIGKILL)
        worker.popen.wait(10)
        stack.processes.remove(worker)
        assert _statuses(client, endpoint) == ["sending"] * 5
        assert endpoint_attempts(client, endpoint) == []
        stack.start_worker("webhooks", "webhooks", pool="threads", concurrency=2)
        wait_for(lambda: _statuses(client, endpoint) == ["delivered"] * 5, 40, 0.2, "all five")
        later = receiver.requests[5:]
        assert sorted(r.headers["webhook-id"] for r in later) == sorted(ids)
        assert [a["status_code"] for a in endpoint_attempts(client, endpoint)] == [200] * 5


def test_an_endpoint_whose_secret_cannot_be_read_holds_up_only_its_own_messages(
    stack: Stack, sessions: sessionmaker[Session]
) -> None:
    with Receiver() as good, Receiver() as locked, stack.client() as client:
        ok, bad = (_endpoint(client, r.url) for r in (good, locked))
        e = WebhookEndpoint
        with sessions.begin() as session:
            stored = session.scalars(select(e.secret).where(e.id == bad["id"])).one()
            # Sealed under a key the worker does not have, as after a key removed too soon.
            foreign = SecretBox([new_key()]).seal("whsec_elsewhere")
            session.execute(update(e).where(e.id == bad["id"]).values(secret=foreign))
        ids = _burst(stack, sessions, [ok, bad], each=3)
        wait_for(lambda: _statuses(client, ok) == ["delivered"] * 3, 20, 0.1, "the good three")
        # Unsigned messages are not sent, and no attempt is logged for them.
        assert locked.requests == []
        assert endpoint_attempts(client, bad) == []
        assert "delivered" not in _statuses(client, bad)
        # Once the secret can be read again, they go when their lease runs out.
        with sessions.begin() as session:
            session.execute(update(e).where(e.id == bad["id"]).values(secret=stored))
        wait_for(lambda: _statuses(client, bad) == ["delivered"] * 3, 40, 0.2, "the held three")
        assert sorted(r.headers["webhook-id"] for r in locked.requests) == sorted(ids[bad["id"]])
        assert sorted(r.headers["webhook-id"] for r in good.requests) == sorted(ids[ok["id"]])


@pytest.fixture
def capped(tmp_path: Path, redis_url: str) -> Iterator[Stack]:
    # A relay that polls rarely: the tenant's later messages go as its
    # batch records replies, not on the relay's clock.
    env = {
        **_ENV,
        "AIA_WEBHOOK_TENANT_MAX_INFLIGHT": "2",
        "AIA_WEBHOOK_RELAY_INTERVAL_SECONDS": "30",
    }
    yield from _webhooks_stack(tmp_path, redis_url, env)


def test_a_batch_goes_on_with_its_tenant_s_next_messages_within_the_cap(
    capped: Stack, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=capped.env["AIA_DATABASE_URL"], data_home=capped.workdir, dev=True
    )
    engine = make_engine(settings)
    try:
        sessions = make_sessionmaker(engine)
        with Receiver() as receiver, capped.client() as client:
            # The first two hang until their deadline: the tenant's room is
            # full, and none of its other six may go meanwhile.
            receiver.respond(ReplySpec(hang=True), ReplySpec(hang=True))
            endpoint = _endpoint(client, receiver.url)
            [ids] = _burst(capped, sessions, [endpoint], each=8).values()
            receiver.wait_for_requests(2, timeout=20)
            assert sorted(_statuses(client, endpoint)) == sorted(["sending"] * 2 + ["pending"] * 6)
            assert len(receiver.requests) == 2
            wait_for(lambda: _statuses(client, endpoint) == ["delivered"] * 8, 40, 0.2, "all")
            # Each message once, and the two cut ones once more after their retry.
            arrived = [r.headers["webhook-id"] for r in receiver.requests]
            assert sorted(set(arrived)) == sorted(ids)
            assert len(arrived) == 10
            attempts = endpoint_attempts(client, endpoint)
            assert len(attempts) == 10
            assert sum(a["succeeded"] for a in attempts) == 8
    finally:
        engine.dispose()
