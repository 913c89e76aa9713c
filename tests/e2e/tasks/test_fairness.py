"""Fairness between tenants: a cap on each tenant's running tasks per queue, and role bounds.

The order of lifecycle events is read from the recorder stream, whose entries
Redis numbers in the order the transition script ran them: the same order in
which slots were taken and given back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import _claim_redis_db, _release
from tests.support import Stack, private_stack, sse_events, submit, wait_for, wait_status

pytestmark = pytest.mark.e2e

CAP = 2
FAIR_ENV = {
    "AIA_TENANT_QUEUE_CONCURRENCY": json.dumps({"default": CAP}),
    # Shorter than the tasks: only the running processes' renewals keep their slots.
    "AIA_TENANT_SLOT_LEASE_SECONDS": "2",
    "AIA_TENANT_DEFER_SECONDS": "0.2",
    # Long enough that a killed worker's tasks are not redelivered while a test looks.
    "AIA_VISIBILITY_TIMEOUT_SECONDS": "60",
}
_ENDS = {"succeeded", "failed", "cancelled", "retrying"}
_TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(params=["direct", "celery"])
def fair_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A stack capped at CAP tasks per tenant on ``default``; no worker yet.

    ``direct``: Redis is broker and event store, and the API queues each task's
    message itself. ``celery``: the broker is another Redis database, so the
    API and the put-back go through Celery's own publishing.
    """
    url = _claim_redis_db()
    broker = _claim_redis_db() if request.param == "celery" else url
    stack = private_stack(tmp_path, url, broker_url=broker, env=FAIR_ENV)
    yield stack
    stack.stop()
    _release(url)
    if broker != url:
        _release(broker)


def _lifecycle(stack: Stack) -> list[tuple[str, str, str]]:
    """(tenant, task id, event) of every start and end, in the order Redis recorded them."""
    entries = stack.redis().xrange("aia:recorder")
    return [
        (fields["tenant"], fields["task"], event)
        for _, fields in entries
        if (event := json.loads(fields["e"])["event"]) in _ENDS | {"started"}
    ]


def _most_running(order: list[tuple[str, str, str]], tenant: str) -> int:
    running = most = 0
    for owner, _, event in order:
        if owner != tenant:
            continue
        running += 1 if event == "started" else -1
        most = max(most, running)
    return most


def _finish(client: httpx.Client, ids: list[str], timeout: float = 120) -> None:
    for task_id in ids:
        view = wait_status(client, task_id, _TERMINAL, timeout=timeout)
        assert view["status"] == "succeeded", view


def test_a_tenant_over_its_cap_waits_while_another_tenant_runs(fair_stack: Stack) -> None:
    fair_stack.start_worker("fair", concurrency=2 * CAP)
    a_key = fair_stack.create_key("operator", "tenant-a")
    b_key = fair_stack.create_key("operator", "tenant-b")
    with fair_stack.client(a_key) as a, fair_stack.client(b_key) as b:
        a_ids = [submit(a, {"seconds": 3, "steps": 3})["id"] for _ in range(3 * CAP)]
        b_ids = [submit(b, {"seconds": 0.2})["id"] for _ in range(CAP)]
        _finish(b, b_ids)
        _finish(a, a_ids)

        order = _lifecycle(fair_stack)
        # A had work for every process of the worker, and never more than its cap running.
        assert _most_running(order, "tenant-a") == CAP
        # B, queued behind all of A's tasks, started before any of A's ended.
        first_a_end = next(
            i for i, (t, _, e) in enumerate(order) if t == "tenant-a" and e in _TERMINAL
        )
        b_starts = [i for i, (t, _, e) in enumerate(order) if t == "tenant-b" and e == "started"]
        assert len(b_starts) == CAP
        assert max(b_starts) < first_a_end, order

        # A's tasks past its cap were put back, yet each ran once, its events unbroken.
        r = fair_stack.redis()
        put_back = [t for t in a_ids if int(r.hget(f"aia:task:{t}", "deferrals") or 0) > 0]
        assert len(put_back) >= len(a_ids) - CAP
        for task_id in put_back:
            events = list(sse_events(a, f"/v1/tasks/{task_id}/events"))
            assert [e["event"] for e in events] == [
                "queued",
                "started",
                "progress",
                "progress",
                "progress",
                "succeeded",
            ]
            assert [int(e["id"]) for e in events] == list(range(1, 7))
            assert a.get(f"/v1/tasks/{task_id}").json()["attempts"] == 1
        # Every slot was given back.
        assert r.zcard("aia:slots:default:tenant-a") == 0
        assert r.zcard("aia:slots:default:tenant-b") == 0


def _under_way(client: httpx.Client, task_id: str) -> bool:
    view = client.get(f"/v1/tasks/{task_id}").json()
    return bool(view["progress"])


@pytest.mark.parametrize("fair_stack", ["direct"], indirect=True)
def test_a_killed_worker_gives_its_slots_back_by_itself(fair_stack: Stack) -> None:
    doomed = fair_stack.start_worker("doomed", concurrency=CAP)
    # An admin's key: these sleeps are longer than other roles may ask for.
    key = fair_stack.create_key("admin", "tenant-a")
    r = fair_stack.redis()
    with fair_stack.client(key) as a:
        held = [submit(a, {"seconds": 300, "steps": 300})["id"] for _ in range(CAP)]
        for task_id in held:
            wait_for(lambda t=task_id: _under_way(a, t), 30, what=f"task {task_id} to run")
        assert r.zcard("aia:slots:default:tenant-a") == CAP

        doomed.kill()  # main process and pool children: nothing gives the slots back
        fair_stack.start_worker("heir", concurrency=CAP)
        after = submit(a, {"seconds": 0})
        assert wait_status(a, after["id"], _TERMINAL, timeout=60)["status"] == "succeeded"

        # It ran in the slots the dead worker held, which lapsed: their own tasks
        # have not even been redelivered yet.
        for task_id in held:
            view = a.get(f"/v1/tasks/{task_id}").json()
            assert (view["status"], view["attempts"]) == ("running", 1)
            assert a.post(f"/v1/tasks/{task_id}/cancel").status_code == 202
