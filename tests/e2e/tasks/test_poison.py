"""Poison tasks: one that kills its worker process every time is quarantined as a dead letter.

Under late acks a pool child that dies mid-task has its message requeued at
once (Celery rejects it with requeue on WorkerLostError), so without a bound
such a task would kill worker processes forever.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from aia_workers.backbone.events import PoisonPolicy, submit_args
from aia_workers.backbone.keys import task_key
from aia_workers.backbone.publisher import EventPublisher
from aia_workers.backbone.scripts import SUBMIT_LUA
from aia_workers.backbone.states import Event
from aia_workers.diagnostics.crash import EXIT_CODE
from tests.conftest import _claim_redis_db, _release
from tests.support import (
    TEST_LIMITS,
    Process,
    Stack,
    sse_events,
    stack_keys,
    submit,
    wait_status,
)

pytestmark = pytest.mark.e2e

MAX_LOSSES = 3  # the default of AIA_POISON_MAX_LOSSES


@pytest.fixture(scope="module")
def poison_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API and one default-queue prefork worker, on a Redis database of their own."""
    tmp: Path = tmp_path_factory.mktemp("stack-poison")
    url = _claim_redis_db()
    stack = Stack(
        env={
            "AIA_REDIS_URL": url,
            "AIA_BROKER_URL": url,
            "AIA_DATABASE_URL": f"sqlite:///{tmp / 'aia.db'}",
            "AIA_DATA_HOME": str(tmp),
            **stack_keys(),
        },
        workdir=tmp,
    )
    try:
        stack.migrate()
        stack.api_key = stack.create_key("admin")
        stack.start_api()
        stack.start_worker("poison")
        yield stack
    finally:
        stack.stop()
        _release(url)


@pytest.fixture(scope="module")
def worker(poison_stack: Stack) -> Process:
    return next(p for p in poison_stack.processes if p.name.startswith("worker-"))


@pytest.fixture
def admin(poison_stack: Stack) -> Iterator[httpx.Client]:
    with poison_stack.client() as client:
        yield client


def _crash(client: httpx.Client, mode: str) -> dict[str, Any]:
    response = client.post(
        "/v1/tasks", json={"type": "diagnostics.worker_crash", "payload": {"mode": mode}}
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def _child_deaths(worker: Process, how: str) -> int:
    """Pool processes the worker saw die ``how`` (e.g. ``exitcode 70``, ``signal 11``)."""
    pattern = rf"Process 'ForkPoolWorker-\d+' pid:\d+ exited with '{re.escape(how)}\b"
    return len(re.findall(pattern, worker.output()))


def _dead_letter_ids(client: httpx.Client) -> list[str]:
    response = client.get("/v1/dead-letters")
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _in_the_broker(stack: Stack, task_id: str) -> bool:
    """Whether a message of ``task_id`` is queued or held unacknowledged on Redis."""
    r = stack.redis()
    messages = [*r.lrange("default", 0, -1), *r.hvals("unacked")]
    return any(task_id in message for message in messages)


def test_a_task_that_kills_its_worker_is_quarantined_then_replayed_and_discarded(
    poison_stack: Stack, worker: Process, admin: httpx.Client
) -> None:
    before = _child_deaths(worker, f"exitcode {EXIT_CODE}")
    task = _crash(admin, "exit")

    view = wait_status(admin, task["id"], {"succeeded", "failed", "cancelled"}, timeout=120)
    assert view["status"] == "failed"
    # It ran, and took its process down, each of the N times it was delivered.
    assert view["attempts"] == MAX_LOSSES
    assert _child_deaths(worker, f"exitcode {EXIT_CODE}") - before == MAX_LOSSES
    assert view["error"]["type"] == "WorkerLost"
    assert view["error"]["losses"] == MAX_LOSSES
    assert f"lost {MAX_LOSSES} times" in view["error"]["message"]
    assert f"/v1/dead-letters/{task['id']}/replay" in view["error"]["message"]
    events = list(sse_events(admin, task["links"]["events"]))
    assert [e["event"] for e in events] == ["queued", *["started"] * MAX_LOSSES, "failed"]
    assert [e["data"]["data"]["attempt"] for e in events[1:-1]] == list(range(1, MAX_LOSSES + 1))
    assert events[-1]["data"]["data"]["error"] == view["error"]

    # The worker lives on and runs other work.
    assert worker.alive()
    after = submit(admin, {"seconds": 0})
    assert wait_status(admin, after["id"], {"succeeded", "failed"})["status"] == "succeeded"

    # The dead letter holds what a person needs to judge and replay it.
    letters = admin.get("/v1/dead-letters").json()
    assert [item["id"] for item in letters["items"]] == [task["id"]]
    letter = admin.get(f"/v1/dead-letters/{task['id']}").json()
    assert letter == letters["items"][0]
    assert letter["type"] == "diagnostics.worker_crash"
    assert letter["queue"] == "default"
    assert letter["payload"] == {"mode": "exit"}
    assert letter["losses"] == MAX_LOSSES
    assert letter["attempts"] == MAX_LOSSES
    assert letter["reason"] == view["error"]["message"]
    assert letter["replay_of"] is None
    assert letter["links"]["replay"] == f"/v1/dead-letters/{task['id']}/replay"

    # Its message was acknowledged: it does not come back by itself.
    assert not _in_the_broker(poison_stack, task["id"])
    time.sleep(2)
    again = admin.get(f"/v1/tasks/{task['id']}").json()
    assert (again["status"], again["attempts"], again["seq"]) == ("failed", MAX_LOSSES, view["seq"])
    assert _child_deaths(worker, f"exitcode {EXIT_CODE}") - before == MAX_LOSSES

    # A replay is a new task with the same type and payload; the entry goes.
    replayed = admin.post(f"/v1/dead-letters/{task['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    second = replayed.json()
    assert second["id"] != task["id"]
    assert second["type"] == "diagnostics.worker_crash"
    assert second["payload"] == {"mode": "exit"}
    assert second["status"] == "queued"
    assert replayed.headers["location"] == f"/v1/tasks/{second['id']}"
    assert admin.get(f"/v1/dead-letters/{task['id']}").status_code == 404
    assert poison_stack.redis().hget(task_key(second["id"]), "replay_of") == task["id"]

    # It crashes too, so it becomes a dead letter of its own, naming the first.
    wait_status(admin, second["id"], {"failed"}, timeout=120)
    assert _dead_letter_ids(admin) == [second["id"]]
    assert admin.get(f"/v1/dead-letters/{second['id']}").json()["replay_of"] == task["id"]

    # Discarded, it is gone; the failed task keeps its record.
    assert admin.delete(f"/v1/dead-letters/{second['id']}").status_code == 204
    assert admin.get(f"/v1/dead-letters/{second['id']}").status_code == 404
    assert admin.delete(f"/v1/dead-letters/{second['id']}").status_code == 404
    assert admin.post(f"/v1/dead-letters/{second['id']}/replay").status_code == 404
    assert _dead_letter_ids(admin) == []
    assert admin.get(f"/v1/tasks/{second['id']}").json()["status"] == "failed"
    assert worker.alive()


@pytest.mark.parametrize(("mode", "death"), [("segfault", "signal 11"), ("abort", "signal 6")])
def test_crashes_by_signal_are_losses_too(
    poison_stack: Stack, worker: Process, admin: httpx.Client, mode: str, death: str
) -> None:
    before = _child_deaths(worker, death)
    task = _crash(admin, mode)
    view = wait_status(admin, task["id"], {"succeeded", "failed", "cancelled"}, timeout=120)
    assert view["status"] == "failed"
    assert view["error"]["type"] == "WorkerLost"
    assert _child_deaths(worker, death) - before == MAX_LOSSES
    assert task["id"] in _dead_letter_ids(admin)
    assert admin.delete(f"/v1/dead-letters/{task['id']}").status_code == 204
    assert worker.alive()


def _seed(stack: Stack, tenant: str, type_name: str, payload: str | None) -> str:
    """A dead letter made by the real scripts, without crashing a worker for it.

    The task is recorded as the API records it (or, with no payload, as work
    from beat is on its first start) but not enqueued; then two starts with a
    policy of one loss quarantine it.
    """
    task_id = str(uuid.uuid4())
    client = redis.Redis.from_url(stack.redis_url)
    if payload is not None:
        keys, args = submit_args(
            task_id=task_id,
            tenant=tenant,
            type_name=type_name,
            queue="default",
            now=time.time(),
            limits=TEST_LIMITS,
            payload_json=payload,
            fingerprint="seeded",
            idempotency_key=None,
            broker_key="",
            broker_message="",
            priority=None,
            eta=None,
        )
        client.register_script(SUBMIT_LUA)(keys=keys, args=args)
    publisher = EventPublisher(client, TEST_LIMITS, poison=PoisonPolicy(max_losses=1))
    fallback = (tenant, type_name, "default")
    publisher.transition(task_id, Event.STARTED, fallback=fallback)
    assert publisher.transition(task_id, Event.STARTED, fallback=fallback).outcome == "quarantined"
    client.close()
    return task_id


def test_a_harmless_dead_letter_replays_and_succeeds(
    poison_stack: Stack, admin: httpx.Client
) -> None:
    seeded = _seed(poison_stack, "default", "diagnostics.sleep", '{"seconds":0,"steps":1}')
    response = admin.post(f"/v1/dead-letters/{seeded}/replay")
    assert response.status_code == 202, response.text
    new = response.json()
    assert new["id"] != seeded
    assert new["payload"] == {"seconds": 0.0, "steps": 1, "fail": False, "transient_failures": 0}
    assert wait_status(admin, new["id"], {"succeeded", "failed"})["status"] == "succeeded"
    assert seeded not in _dead_letter_ids(admin)


def test_a_dead_letter_without_a_usable_payload_is_a_409_and_is_kept(
    poison_stack: Stack, admin: httpx.Client
) -> None:
    # Work that did not come through the API has no payload on record.
    seeded = _seed(poison_stack, "default", "diagnostics.sleep", None)
    response = admin.post(f"/v1/dead-letters/{seeded}/replay")
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:aia:problem:dead-letter-not-replayable"
    assert f"DELETE /v1/dead-letters/{seeded}" in problem["detail"]
    assert admin.get(f"/v1/dead-letters/{seeded}").status_code == 200
    assert admin.delete(f"/v1/dead-letters/{seeded}").status_code == 204


def test_dead_letters_page_newest_first(poison_stack: Stack, admin: httpx.Client) -> None:
    seeded = [_seed(poison_stack, "default", "diagnostics.sleep", "{}") for _ in range(5)]
    seen: list[str] = []
    url: str | None = "/v1/dead-letters?limit=2"
    while url:
        response = admin.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        url = page["links"].get("next")
        assert (url is None) == (page["next_cursor"] is None)
    assert seen == list(reversed(seeded))
    bad = admin.get("/v1/dead-letters?cursor=not-a-cursor")
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    for task_id in seeded:
        assert admin.delete(f"/v1/dead-letters/{task_id}").status_code == 204


def test_dead_letters_are_tenant_scoped_and_need_permissions(
    poison_stack: Stack, admin: httpx.Client
) -> None:
    seeded = _seed(poison_stack, "default", "diagnostics.worker_crash", '{"mode":"exit"}')
    with poison_stack.client(poison_stack.create_key("admin", tenant="other")) as other:
        assert other.get("/v1/dead-letters").json()["items"] == []
        assert other.get(f"/v1/dead-letters/{seeded}").status_code == 404
        assert other.post(f"/v1/dead-letters/{seeded}/replay").status_code == 404
        assert other.delete(f"/v1/dead-letters/{seeded}").status_code == 404
    with poison_stack.client(poison_stack.create_key("viewer")) as viewer:
        assert viewer.get(f"/v1/dead-letters/{seeded}").status_code == 200
        assert viewer.post(f"/v1/dead-letters/{seeded}/replay").status_code == 403
        assert viewer.delete(f"/v1/dead-letters/{seeded}").status_code == 403
    with poison_stack.client(poison_stack.create_key("operator")) as operator:
        # Operators may replay, but this type kills workers: only admins may run it.
        refused = operator.post(f"/v1/dead-letters/{seeded}/replay")
        assert refused.status_code == 403
        assert refused.json()["permission"] == "diagnostics:crash"
        crash = {"type": "diagnostics.worker_crash", "payload": {}}
        assert operator.post("/v1/tasks", json=crash).status_code == 403
        assert operator.get(f"/v1/dead-letters/{seeded}").status_code == 200
        assert operator.delete(f"/v1/dead-letters/{seeded}").status_code == 204
    assert seeded not in _dead_letter_ids(admin)
