"""An agent's line end to end: a parked run says it waits, a cancelled one leaves the line,
a deleted agent leaves nothing in Redis once its runs are over.

Each agent here runs one run at a time (``max_concurrency`` 1); the first run
holds the slot for as long as a test needs the others parked, and the tests
read the line from Redis as the workers share it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis

from aia_workers.backbone.keys import (
    AGENTS_ACTIVE_KEY,
    agent_limit_key,
    agent_member,
    agent_parked_key,
)
from tests.support import Stack, sse_events, wait_for, wait_status

pytestmark = pytest.mark.e2e

TENANT = "default"


@pytest.fixture
def api(agents_stack: Stack) -> Iterator[httpx.Client]:
    with agents_stack.client() as client:
        yield client


@pytest.fixture
def line(agents_stack: Stack) -> Iterator[redis.Redis]:
    client = agents_stack.redis()
    yield client
    client.close()


def _agent(api: httpx.Client) -> str:
    body = {
        "name": f"line-{uuid.uuid4().hex[:8]}",
        "type": "steps",
        "config": {"step_seconds": 0.1},
        "max_concurrency": 1,
    }
    response = api.post("/v1/agents", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def _run(api: httpx.Client, agent_id: str, steps: int = 2) -> str:
    response = api.post(f"/v1/agents/{agent_id}/runs", json={"input": {"steps": steps}})
    assert response.status_code == 202, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def _parked(line: redis.Redis, agent_id: str) -> list[str]:
    return line.zrange(agent_parked_key(TENANT, agent_id), 0, -1)  # type: ignore[return-value]


def _wait_parked(line: redis.Redis, agent_id: str, runs: list[str]) -> None:
    wait_for(lambda: _parked(line, agent_id) == runs, 30, what=f"{len(runs)} runs to be parked")


def _done(api: httpx.Client, run_id: str) -> dict[str, Any]:
    return wait_status(api, run_id, {"succeeded", "failed", "cancelled"}, 60)


def test_a_parked_run_says_on_its_stream_what_it_waits_for(
    api: httpx.Client, line: redis.Redis
) -> None:
    agent = _agent(api)
    first = _run(api, agent, steps=200)
    wait_status(api, first, {"running"})
    parked = _run(api, agent)
    _wait_parked(line, agent, [parked])
    assert api.get(f"/v1/tasks/{parked}").json()["status"] == "queued"
    api.post(f"/v1/tasks/{first}/cancel")
    events = list(sse_events(api, f"/v1/tasks/{parked}/events"))
    names = [(e["event"], e["data"]["status"]) for e in events]
    assert names[:3] == [("queued", "queued"), ("progress", "queued"), ("started", "running")]
    assert names[-1] == ("succeeded", "succeeded")
    waiting = events[1]["data"]["data"]
    assert waiting["waiting"] == {"agent_id": agent, "ahead": 0}
    assert agent in waiting["message"]
    # Its progress is the run's own, not the wait's.
    assert api.get(f"/v1/tasks/{parked}").json()["progress"]["total"] == 2


def test_a_run_cancelled_mid_line_leaves_it_and_the_rest_start_in_order(
    agents_stack: Stack, api: httpx.Client, line: redis.Redis
) -> None:
    agent = _agent(api)
    first = _run(api, agent, steps=200)
    wait_status(api, first, {"running"})
    before, cancelled, after = _run(api, agent), _run(api, agent), _run(api, agent)
    _wait_parked(line, agent, [before, cancelled, after])
    response = api.post(f"/v1/tasks/{cancelled}/cancel")
    assert response.status_code == 202, response.text
    # Gone from the line by the time the cancel answers, not when it reaches the front.
    assert _parked(line, agent) == [before, after]
    api.post(f"/v1/tasks/{first}/cancel")
    views = [_done(api, run_id) for run_id in (before, after)]
    assert [v["status"] for v in views] == ["succeeded", "succeeded"]
    # One at a time, in submission order.
    assert datetime.fromisoformat(views[0]["finished_at"]) <= datetime.fromisoformat(
        views[1]["started_at"]
    )
    assert api.get(f"/v1/tasks/{cancelled}").json()["status"] == "cancelled"
    assert agents_stack.redis().llen(f"aia-e2e:steps:{cancelled}") == 0


def test_a_deleted_agents_waiting_runs_fail_and_none_of_its_keys_outlive_its_runs(
    api: httpx.Client, line: redis.Redis
) -> None:
    agent = _agent(api)
    running = _run(api, agent, steps=200)
    wait_status(api, running, {"running"})
    waiting = [_run(api, agent), _run(api, agent)]
    _wait_parked(line, agent, waiting)
    assert api.delete(f"/v1/agents/{agent}").status_code == 204
    # The waiting runs failed with the delete, saying why; the limit is gone with it.
    for run_id in waiting:
        view = api.get(f"/v1/tasks/{run_id}").json()
        assert view["status"] == "failed", view
        assert "was deleted before this run started" in view["error"]["message"]
    assert _parked(line, agent) == []
    assert line.get(agent_limit_key(TENANT, agent)) is None
    # The running run is not stopped by the delete; once it ends, nothing of the agent is left.
    assert api.get(f"/v1/tasks/{running}").json()["status"] == "running"
    api.post(f"/v1/tasks/{running}/cancel")
    assert _done(api, running)["status"] == "cancelled"

    def forgotten() -> bool:
        keys = list(line.scan_iter(f"aia:agent:{TENANT}:{agent}:*"))
        return not keys and not line.sismember(AGENTS_ACTIVE_KEY, agent_member(TENANT, agent))

    wait_for(forgotten, 30, what="the deleted agent's keys to go")
