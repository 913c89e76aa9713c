"""Agents end to end: a third-party type installed by entry point, configured, run, cancelled.

The stack's API and ``agents`` worker both have the plugin of plugin_agents.py
on their path, installed as a distribution with entry points, as pip leaves one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import Stack, sse_events, wait_for, wait_status

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(agents_stack: Stack) -> Iterator[httpx.Client]:
    with agents_stack.client() as client:
        yield client


def _create(api: httpx.Client, type_name: str, **fields: Any) -> dict[str, Any]:
    body = {"name": f"{type_name}-{uuid.uuid4().hex[:8]}", "type": type_name, **fields}
    response = api.post("/v1/agents", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/agents/{response.json()['id']}"
    return response.json()  # type: ignore[no-any-return]


def _start(api: httpx.Client, agent_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"/v1/agents/{agent_id}/runs", json={"input": inputs})
    assert response.status_code == 202, response.text
    view = response.json()
    assert (view["type"], view["queue"]) == ("agents.run", "agents")
    assert response.headers["location"] == f"/v1/tasks/{view['id']}"
    return view  # type: ignore[no-any-return]


def _pointers(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [e["pointer"] for e in response.json()["errors"]]


def test_the_plugin_types_are_listed_with_their_schemas(api: httpx.Client) -> None:
    listing = api.get("/v1/agents/types")
    assert listing.status_code == 200, listing.text
    types = {t["name"]: t for t in listing.json()["items"]}
    assert {"echo", "steps"} <= set(types)
    echo = types["echo"]
    assert echo["summary"] == "Says the input back, prefixed and repeated."
    assert echo["config_schema"]["properties"]["repeat"]["maximum"] == 5
    assert echo["input_schema"]["required"] == ["text"]
    broken = {b["name"]: b for b in listing.json()["broken"]}
    assert broken["e2e-broken"]["distribution"] == "aia-e2e-agents"
    assert "AttributeError" in broken["e2e-broken"]["error"]
    assert "e2e-broken" not in types


def test_an_agent_runs_reporting_progress_and_returns_its_output(
    agents_stack: Stack, api: httpx.Client
) -> None:
    agent = _create(api, "echo", config={"prefix": "> ", "repeat": 3}, description="parrot")
    assert agent["config"] == {"prefix": "> ", "repeat": 3}
    assert agent["max_concurrency"] == 1
    task = _start(api, agent["id"], {"text": "hello"})
    events = list(sse_events(api, task["links"]["events"]))
    assert [e["event"] for e in events][-1] == "succeeded"
    progress = [e["data"]["data"] for e in events if e["event"] == "progress"]
    assert [(p["current"], p["total"]) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    assert progress[-1]["message"] == "said it 3 times"
    done = api.get(f"/v1/tasks/{task['id']}").json()
    assert done["result"] == {
        "echo": "> hello > hello > hello",
        "tenant": "default",
        "agent_id": agent["id"],
    }
    runs = api.get(f"/v1/agents/{agent['id']}/runs").json()["items"]
    assert [(r["id"], r["status"], r["input"]) for r in runs] == [
        (task["id"], "succeeded", {"text": "hello"})
    ]


def test_bad_config_and_input_are_422_naming_the_field(api: httpx.Client) -> None:
    bad = {"name": "bad", "type": "echo", "config": {"repeat": 9}}
    assert _pointers(api.post("/v1/agents", json=bad)) == ["/config/repeat"]
    assert _pointers(api.post("/v1/agents", json={**bad, "type": "nope"})) == ["/type"]
    agent = _create(api, "echo")
    assert _pointers(api.patch(f"/v1/agents/{agent['id']}", json={"config": {"x": 1}})) == [
        "/config/x"
    ]
    run = api.post(f"/v1/agents/{agent['id']}/runs", json={"input": {"text": ""}})
    assert _pointers(run) == ["/input/text"]
    taken = api.post("/v1/agents", json={"name": agent["name"], "type": "echo"})
    assert taken.status_code == 409, taken.text
    changed = api.patch(
        f"/v1/agents/{agent['id']}",
        json={"config": {"repeat": 2}, "max_concurrency": 4, "description": "two"},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["config"], changed.json()["max_concurrency"]) == (
        {"prefix": "", "repeat": 2},
        4,
    )


def test_a_cancelled_run_stops_at_its_next_checkpoint(
    agents_stack: Stack, api: httpx.Client
) -> None:
    agent = _create(api, "steps", config={"step_seconds": 0.2})
    task = _start(api, agent["id"], {"steps": 200})
    notes = agents_stack.redis()
    key = f"aia-e2e:steps:{task['id']}"
    wait_for(lambda: notes.llen(key) >= 2, 30, what="the run to take two steps")
    cancelled = api.post(f"/v1/tasks/{task['id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    # The body stopped itself (its finally ran): it was not killed mid-step.
    wait_for(lambda: "exited" in notes.lrange(key, 0, -1), 30, what="the run to stop")
    steps = [n for n in notes.lrange(key, 0, -1) if n != "exited"]
    assert 2 <= len(steps) < 200
    view = api.get(f"/v1/tasks/{task['id']}").json()
    assert view["status"] == "cancelled"
    events = [e["event"] for e in sse_events(api, task["links"]["events"])]
    assert events[-1] == "cancelled"
    assert "failed" not in events


def test_a_run_of_an_agent_deleted_before_it_starts_fails_saying_so(api: httpx.Client) -> None:
    agent = _create(api, "echo")
    # Through the tasks API, a second from now: the agent is gone by then.
    queued = api.post(
        "/v1/tasks",
        json={
            "type": "agents.run",
            "payload": {"agent_id": agent["id"], "input": {"text": "hi"}},
            "countdown": 1,
        },
    )
    assert queued.status_code == 202, queued.text
    assert api.delete(f"/v1/agents/{agent['id']}").status_code == 204
    assert api.get(f"/v1/agents/{agent['id']}").status_code == 404
    failed = wait_status(api, queued.json()["id"], {"succeeded", "failed"})
    assert failed["status"] == "failed"
    assert "was deleted before this run started" in failed["error"]["message"]


def test_tenants_see_only_their_own_agents(agents_stack: Stack, api: httpx.Client) -> None:
    agent = _create(api, "echo")
    with agents_stack.client(agents_stack.create_key("admin", tenant="other")) as other:
        assert other.get(f"/v1/agents/{agent['id']}").status_code == 404
        assert other.get(f"/v1/agents/{agent['id']}/runs").status_code == 404
        assert other.patch(f"/v1/agents/{agent['id']}", json={"name": "x"}).status_code == 404
        assert other.delete(f"/v1/agents/{agent['id']}").status_code == 404
        refused = other.post(f"/v1/agents/{agent['id']}/runs", json={"input": {"text": "x"}})
        assert refused.status_code == 404
        # Submitted through the tasks API, the run finds no such agent in its tenant.
        sneaked = other.post(
            "/v1/tasks",
            json={"type": "agents.run", "payload": {"agent_id": agent["id"], "input": {}}},
        ).json()
        assert wait_status(other, sneaked["id"], {"succeeded", "failed"})["status"] == "failed"
        assert agent["id"] not in {a["id"] for a in other.get("/v1/agents").json()["items"]}
        # The same name is free in another tenant.
        mine = other.post("/v1/agents", json={"name": agent["name"], "type": "echo"})
        assert mine.status_code == 201, mine.text
    assert agent["id"] in {a["id"] for a in api.get("/v1/agents?limit=200").json()["items"]}


def test_roles_bound_what_a_caller_may_do(agents_stack: Stack, api: httpx.Client) -> None:
    agent = _create(api, "echo")
    with agents_stack.client(agents_stack.create_key("viewer")) as viewer:
        assert viewer.get("/v1/agents/types").status_code == 200
        assert viewer.get(f"/v1/agents/{agent['id']}").status_code == 200
        denied = viewer.post(f"/v1/agents/{agent['id']}/runs", json={"input": {"text": "x"}})
        assert denied.status_code == 403
        assert denied.json()["permission"] == "agents:run"
        assert viewer.post("/v1/agents", json={"name": "v", "type": "echo"}).status_code == 403
