"""Schedules end to end: the API, a default worker and two ``aia beat`` processes.

Every run of a tenant's schedule is submitted under the idempotency key of its
(schedule, slot), so the test reads which slots fired, and as which task, from
those keys in Redis, and checks them against the tenant's task list.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from aia_workers.backbone.keys import idempotency_key
from tests.conftest import _build_stack, _fresh_postgres, _release
from tests.support import Process, Stack, wait_for

pytestmark = pytest.mark.e2e

_SYSTEM_QUEUE = "schedtest"
_ENV = {
    "AIA_SCHEDULE_MIN_INTERVAL_SECONDS": "1",
    "AIA_BEAT_POLL_SECONDS": "0.2",
    "AIA_BEAT_RETRY_SECONDS": "0.5",
    # A beat stopped between claiming a slot and submitting it holds the schedule
    # until its lease lapses: short here, so a restart soon takes the slot over.
    "AIA_BEAT_LEASE_SECONDS": "2",
    # A system entry sending a plain task to a queue no worker reads, to count.
    "AIA_SYSTEM_SCHEDULES": json.dumps(
        [{"name": "ping", "task": "aia.test.ping", "queue": _SYSTEM_QUEUE, "interval_seconds": 1}]
    ),
}


@pytest.fixture(scope="module")
def beats_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack-schedules")
    with _fresh_postgres() as database:
        built = _build_stack(tmp, "redis", database, _ENV)
        built.start_beat("a")
        built.start_beat("b")
        yield built
        built.stop()
        _release(built.redis_url)


@pytest.fixture
def api(beats_stack: Stack) -> Iterator[httpx.Client]:
    with beats_stack.client() as client:
        yield client


def _beats(stack: Stack) -> list[Process]:
    return [p for p in stack.processes if p.name.startswith("beat-") and p.alive()]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _task_of(client: redis.Redis, schedule_id: str, slot: datetime) -> str | None:
    """The task the slot's run made, read from its idempotency key (None: it did not fire)."""
    key = f"schedule:{schedule_id}:{slot.isoformat()}"
    raw = client.get(idempotency_key("default", hashlib.sha256(key.encode()).hexdigest()))
    return None if raw is None else str(raw).split("|")[0]


def _fired(
    client: redis.Redis, schedule_id: str, first: datetime, last: datetime, step: float = 1
) -> dict[datetime, str]:
    """Each slot on the grid from ``first`` to ``last`` that fired, with its task."""
    out = {}
    slot = first
    while slot <= last:
        task = _task_of(client, schedule_id, slot)
        if task:
            out[slot] = task
        slot += timedelta(seconds=step)
    return out


def _listed(api: httpx.Client, steps: int) -> set[str]:
    """The tenant's diagnostics.sleep tasks whose payload has ``steps`` (a per-test mark)."""
    seen: set[str] = set()
    url: str | None = "/v1/tasks?type=diagnostics.sleep&limit=200"
    while url:
        page = api.get(url).json()
        seen.update(t["id"] for t in page["items"] if t["payload"].get("steps") == steps)
        url = page["links"].get("next")
    return seen


def _create(api: httpx.Client, **body: Any) -> dict[str, Any]:
    reply = api.post("/v1/schedules", json={"type": "diagnostics.sleep", **body})
    assert reply.status_code == 201, reply.text
    assert reply.headers["location"] == f"/v1/schedules/{reply.json()['id']}"
    return reply.json()  # type: ignore[no-any-return]


def _patch(api: httpx.Client, schedule_id: str, **body: Any) -> dict[str, Any]:
    reply = api.patch(f"/v1/schedules/{schedule_id}", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def test_the_api_checks_what_it_stores(beats_stack: Stack, api: httpx.Client) -> None:
    def error(body: dict[str, Any], client: httpx.Client = api) -> tuple[int, str | None]:
        reply = client.post(
            "/v1/schedules", json={"name": "x", "type": "diagnostics.sleep", **body}
        )
        errors = reply.json().get("errors") or [{}]
        return reply.status_code, errors[0].get("pointer")

    assert error({"cron": "* * * *"}) == (422, "/cron")
    assert error({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}) == (422, "/timezone")
    assert error({"cron": "0 9 * * *", "interval_seconds": 60}) == (422, "/interval_seconds")
    assert error({}) == (422, "/cron")
    assert error({"interval_seconds": 0}) == (422, "/interval_seconds")
    assert error({"interval_seconds": 60, "payload": {"seconds": -1}}) == (
        422,
        "/payload/seconds",
    )
    assert error({"interval_seconds": 60, "type": "no.such"}) == (422, "/type")

    made = _create(api, name="checked", interval_seconds=3600, payload={"seconds": 0})
    assert made["created_by"].startswith("key:")
    assert made["last_run"] is None
    assert (
        api.post(
            "/v1/schedules",
            json={
                "name": "checked",
                "type": "diagnostics.sleep",
                "payload": {"seconds": 0},
                "cron": "0 0 * * *",
            },
        ).status_code
        == 409
    )
    assert (
        _patch(api, made["id"], cron="0 9 * * 1-5", timezone="Europe/Berlin")["interval_seconds"]
        is None
    )

    viewer = beats_stack.client(beats_stack.create_key("viewer"))
    operator = beats_stack.client(beats_stack.create_key("operator"))
    stranger = beats_stack.client(beats_stack.create_key("admin", tenant="other"))
    with viewer, operator, stranger:
        assert viewer.get(f"/v1/schedules/{made['id']}").status_code == 200
        assert error({"interval_seconds": 60, "payload": {"seconds": 0}}, viewer)[0] == 403
        reply = operator.post(
            "/v1/schedules",
            json={
                "name": "crash",
                "type": "diagnostics.worker_crash",
                "payload": {"mode": "exit"},
                "interval_seconds": 60,
            },
        )
        assert reply.status_code == 403
        assert reply.json()["permission"] == "diagnostics:crash"
        assert stranger.get(f"/v1/schedules/{made['id']}").status_code == 404
        assert stranger.get("/v1/schedules").json()["items"] == []
    assert api.delete(f"/v1/schedules/{made['id']}").status_code == 204
    audit = api.get("/v1/audit?action=schedule.create&action=schedule.delete").json()["items"]
    assert {e["action"] for e in audit} >= {"schedule.create", "schedule.delete"}


def test_two_beats_fire_each_slot_exactly_once(beats_stack: Stack, api: httpx.Client) -> None:
    client = beats_stack.redis()
    made = _create(api, name="every-second", interval_seconds=1, payload={"seconds": 0, "steps": 3})
    first = _at(made["next_run_at"])

    def runs() -> int:
        view = api.get(f"/v1/schedules/{made['id']}").json()
        last = view["last_run"]
        return 0 if last is None else len(_fired(client, made["id"], first, _at(last["slot_at"])))

    wait_for(lambda: runs() >= 5, 30, 0.3, "five runs")
    view = _patch(api, made["id"], enabled=False)
    assert view["next_run_at"] is None
    time.sleep(1.5)  # a beat may be launching a slot claimed before the change
    view = api.get(f"/v1/schedules/{made['id']}").json()
    fired = _fired(
        client, made["id"], first, _at(view["last_run"]["slot_at"]) + timedelta(seconds=10)
    )
    time.sleep(2)
    assert _fired(client, made["id"], first, first + timedelta(minutes=5)) == fired

    # One task per slot, every one of them in the tenant's list and run.
    assert len(set(fired.values())) == len(fired) >= 5
    wait_for(lambda: _listed(api, 3) == set(fired.values()), 30, 0.3, "the runs to be listed")
    assert view["last_run"]["task_id"] == fired[max(fired)]
    done = api.get(f"/v1/tasks/{view['last_run']['task_id']}").json()["status"]
    assert view["last_run"]["status"] in {"queued", "running", "succeeded"}
    assert done in {"queued", "running", "succeeded"}
    # Under load beat may fold late slots into one run, but never fires one twice
    # nor off the grid (checked above); most slots fire.
    slots = (max(fired) - min(fired)).total_seconds() + 1
    assert len(fired) >= slots / 2


def test_changes_are_followed_without_a_restart(beats_stack: Stack, api: httpx.Client) -> None:
    client = beats_stack.redis()
    made = _create(api, name="changing", cron="0 0 1 1 *", payload={"seconds": 0, "steps": 4})
    time.sleep(1)
    assert _listed(api, 4) == set()

    # Re-timed to every second: runs within 10 s.
    view = _patch(api, made["id"], interval_seconds=1)
    assert view["cron"] is None
    first = _at(view["next_run_at"])
    wait_for(lambda: _task_of(client, made["id"], first), 10, 0.2, "the first run after a change")

    # A new payload: the next runs carry it.
    _patch(api, made["id"], payload={"seconds": 0, "steps": 5})
    wait_for(lambda: _listed(api, 5), 10, 0.3, "a run with the new payload")

    # Deleted: no further run.
    assert api.delete(f"/v1/schedules/{made['id']}").status_code == 204
    assert api.get(f"/v1/schedules/{made['id']}").status_code == 404
    time.sleep(1.5)
    last = max(_fired(client, made["id"], first, first + timedelta(minutes=5)))
    time.sleep(2)
    assert max(_fired(client, made["id"], first, first + timedelta(minutes=5))) == last


def test_system_schedules_send_each_slot_once(beats_stack: Stack) -> None:
    broker = beats_stack.redis()
    wait_for(lambda: broker.llen(_SYSTEM_QUEUE) >= 3, 30, 0.2, "three system runs")
    ids = [json.loads(m)["headers"]["id"] for m in broker.lrange(_SYSTEM_QUEUE, 0, -1)]
    assert len(ids) == len(set(ids))


def test_a_beat_that_was_down_catches_up_once(beats_stack: Stack, api: httpx.Client) -> None:
    client = beats_stack.redis()
    made = _create(api, name="while-down", interval_seconds=1, payload={"seconds": 0, "steps": 6})
    first = _at(made["next_run_at"])
    wait_for(lambda: _task_of(client, made["id"], first), 30, 0.2, "the first run")
    for beat in _beats(beats_stack):
        beat.stop()
    stopped = api.get(f"/v1/schedules/{made['id']}").json()
    missed_from = _at(stopped["next_run_at"])
    time.sleep(4)  # four slots pass with no beat
    restart = datetime.now(UTC)
    beats_stack.start_beat("c")
    beats_stack.start_beat("d")
    # Beats starting on a loaded machine take a while to tick.
    wait_for(lambda: _task_of(client, made["id"], missed_from), 30, 0.2, "the catch-up run")
    fired = _fired(client, made["id"], missed_from, restart)
    # The due slot fired once for all the missed ones (those while beat started too).
    assert list(fired) == [missed_from]
