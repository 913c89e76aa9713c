"""Webhooks workers stay available: slow receivers are cut at the deadline, and each
tenant has only so many deliveries in flight.

Each test runs a stack of its own with a webhooks worker of one or two threads,
so that who holds a thread is known: the shared webhook stack has eight.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.webhooks.env import QUICK_WEBHOOKS
from tests.e2e.webhooks.listing import endpoint_attempts, endpoint_messages
from tests.support import Stack, private_stack, wait_for
from tests.webhook_receiver import Receiver, ReplySpec

pytestmark = pytest.mark.e2e


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


def _webhooks_stack(
    workdir: Path, redis_url: str, threads: int, env: dict[str, str]
) -> Iterator[Stack]:
    stack = private_stack(workdir, redis_url, role="admin", env={**QUICK_WEBHOOKS, **env})
    try:
        stack.start_worker("webhooks", "webhooks", pool="threads", concurrency=threads)
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def one_thread(tmp_path: Path, redis_url: str) -> Iterator[Stack]:
    """A stack whose webhooks worker has one thread; attempts end after 3 s."""
    yield from _webhooks_stack(tmp_path, redis_url, 1, {"AIA_WEBHOOK_DEADLINE_SECONDS": "3"})


@pytest.fixture
def two_threads(tmp_path: Path, redis_url: str) -> Iterator[Stack]:
    """Two threads, one delivery in flight per tenant, attempts ending after 30 s."""
    yield from _webhooks_stack(
        tmp_path,
        redis_url,
        2,
        {"AIA_WEBHOOK_TENANT_MAX_INFLIGHT": "1", "AIA_WEBHOOK_DEADLINE_SECONDS": "30"},
    )


def _endpoint(client: httpx.Client, url: str) -> dict[str, Any]:
    response = client.post("/v1/webhooks", json={"url": url, "events": ["task.failed"]})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _test_event(client: httpx.Client, endpoint: dict[str, Any]) -> None:
    response = client.post(f"/v1/webhooks/{endpoint['id']}/test")
    assert response.status_code == 202, response.text


def _delivered(client: httpx.Client, endpoint: dict[str, Any], count: int = 1) -> bool:
    return sum(m["status"] == "delivered" for m in endpoint_messages(client, endpoint)) >= count


def test_a_trickling_receiver_is_cut_at_the_deadline_and_its_thread_freed(
    one_thread: Stack, receivers: list[Receiver]
) -> None:
    slow, healthy = Receiver(), Receiver()
    receivers += [slow, healthy]
    # Each byte of the head well inside the 60 s read timeout; all of it would
    # take two minutes. The retry gets a plain 200.
    slow.respond(ReplySpec(headers={"X-Pad": "x" * 480}, trickle_head_seconds=0.25))
    with one_thread.client() as client:
        trickled = _endpoint(client, slow.url)
        other = _endpoint(client, healthy.url)
        _test_event(client, trickled)
        slow.wait_for_requests(1, timeout=20)
        # The worker's one thread is taken; this waits for it.
        _test_event(client, other)
        wait_for(lambda: _delivered(client, other), 30, 0.2, "the healthy delivery")
        wait_for(lambda: _delivered(client, trickled), 30, 0.2, "the retried delivery")
        cut, retried = endpoint_attempts(client, trickled)
    assert cut["status_code"] is None
    assert cut["succeeded"] is False
    assert cut["error"] == (
        "deadline exceeded: no complete reply within 3 s (AIA_WEBHOOK_DEADLINE_SECONDS)"
    )
    assert cut["next_attempt_at"] is not None
    assert retried["status_code"] == 200
    assert len(slow.requests) == 2
    assert len({r.headers["webhook-id"] for r in slow.requests}) == 1


def test_a_tenant_s_stalled_receiver_does_not_hold_up_another_tenant(
    two_threads: Stack, receivers: list[Receiver]
) -> None:
    stalled, healthy = Receiver(), Receiver()
    receivers += [stalled, healthy]
    stalled.default = ReplySpec(hang=True)
    with (
        two_threads.client(two_threads.create_key("admin", tenant="tenant-a")) as a,
        two_threads.client(two_threads.create_key("admin", tenant="tenant-b")) as b,
    ):
        endpoint_a = _endpoint(a, stalled.url)
        for _ in range(3):
            _test_event(a, endpoint_a)
        stalled.wait_for_requests(1, timeout=20)
        endpoint_b = _endpoint(b, healthy.url)
        _test_event(b, endpoint_b)
        # Without the cap tenant A's messages would hold both threads (and the
        # queue ahead of B's) until their deadline, 30 s on.
        wait_for(lambda: _delivered(b, endpoint_b), 20, 0.2, "tenant B's delivery")
        # Meanwhile A's first attempt is still stalled and its others wait in the outbox.
        assert endpoint_attempts(a, endpoint_a) == []
        assert sorted(m["status"] for m in endpoint_messages(a, endpoint_a)) == [
            "pending",
            "pending",
            "sending",
        ]
        assert len(stalled.requests) == 1
