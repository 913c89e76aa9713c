"""Workflows end to end: graphs of the test plugin's agents run as canvas by a real worker.

``echo`` says its input back, ``combine`` joins two earlier outputs, and
``fail_once`` fails its agent's first run, then succeeds: a fault fixed
between a failed run and its resume.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import Stack, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(agents_stack: Stack) -> Iterator[httpx.Client]:
    with agents_stack.client() as client:
        yield client


def _agent(api: httpx.Client, type_name: str, **fields: Any) -> str:
    body = {"name": f"{type_name}-{uuid.uuid4().hex[:8]}", "type": type_name, **fields}
    response = api.post("/v1/agents", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def _workflow(api: httpx.Client, steps: list[dict[str, Any]]) -> dict[str, Any]:
    body = {"name": f"wf-{uuid.uuid4().hex[:8]}", "steps": steps}
    response = api.post("/v1/workflows", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/workflows/{response.json()['id']}"
    return response.json()  # type: ignore[no-any-return]


def _start(api: httpx.Client, workflow_id: str) -> dict[str, Any]:
    response = api.post(f"/v1/workflows/{workflow_id}/runs")
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/workflows/runs/{response.json()['id']}"
    return response.json()  # type: ignore[no-any-return]


def _ended(api: httpx.Client, run_id: str) -> dict[str, Any]:
    # Over, and settled: a step sent beside a failed one may still be running.
    def check() -> dict[str, Any] | None:
        view = api.get(f"/v1/workflows/runs/{run_id}").json()
        if view["status"] not in {"succeeded", "failed", "cancelled"}:
            return None
        busy = [s for s in view["steps"] if s["status"] in {"queued", "running"}]
        return None if busy else view

    return wait_for(check, 60, 0.2, f"workflow run {run_id} to end")  # type: ignore[no-any-return]


def _steps(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in view["steps"]}


def _output(api: httpx.Client, step: dict[str, Any]) -> dict[str, Any]:
    response = api.get(step["links"]["self"])
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _agent_runs(api: httpx.Client, agent_id: str) -> list[dict[str, Any]]:
    return api.get(f"/v1/agents/{agent_id}/runs").json()["items"]  # type: ignore[no-any-return]


def _fan_in(api: httpx.Client, second_type: str = "echo") -> tuple[dict[str, Any], dict[str, str]]:
    agents = {
        "a": _agent(api, "echo"),
        "b": _agent(api, second_type),
        "c": _agent(api, "combine"),
    }
    workflow = _workflow(
        api,
        [
            {"id": "a", "agent_id": agents["a"], "input": {"text": "alpha"}},
            {"id": "b", "agent_id": agents["b"], "input": {"text": "beta"}},
            {
                "id": "c",
                "agent_id": agents["c"],
                "inputs_from": {"first": "a", "second": "b"},
            },
        ],
    )
    return workflow, agents


def test_two_steps_side_by_side_feed_a_third(api: httpx.Client) -> None:
    workflow, agents = _fan_in(api)
    started = _start(api, workflow["id"])
    assert started["progress"]["total"] == 3
    assert started["status"] in {"queued", "running", "succeeded"}
    run = _ended(api, started["id"])
    assert run["status"] == "succeeded", run
    assert run["error"] is None
    assert run["progress"] == {"done": 3, "total": 3}
    steps = _steps(run)
    c = _output(api, steps["c"])
    # Built from both earlier outputs, each as its step's agent said it.
    assert c["output"]["combined"] == "alpha & beta"
    assert c["input"]["first"]["echo"] == "alpha"
    assert c["input"]["second"]["echo"] == "beta"
    assert c["input"]["first"]["agent_id"] == agents["a"]
    for step_id, step in steps.items():
        assert step["status"] == "succeeded"
        task = api.get(step["links"]["task"]).json()
        assert (task["type"], task["queue"], task["status"]) == (
            "agents.workflow_step",
            "agents",
            "succeeded",
        )
        # Its agent named too: the step holds one of the agent's slots while it runs.
        assert task["payload"] == {
            "run_id": run["id"],
            "step_id": step_id,
            "agent_id": agents[step_id],
        }
        assert task["result"] == _output(api, step)["output"]
        # Each step is a run of its agent, under the step's task id.
        assert [r["id"] for r in _agent_runs(api, agents[step_id])] == [step["task_id"]]
    # C started only once A and B had ended.
    assert steps["c"]["started_at"] >= max(steps["a"]["finished_at"], steps["b"]["finished_at"])
    listed = api.get(f"/v1/workflows/{workflow['id']}/runs").json()["items"]
    assert [(r["id"], r["status"]) for r in listed] == [(run["id"], "succeeded")]


def test_workflows_list_newest_first_a_page_at_a_time(api: httpx.Client) -> None:
    agent = _agent(api, "echo")
    step = {"id": "a", "agent_id": agent, "input": {"text": "alpha"}}
    made = [_workflow(api, [step])["id"] for _ in range(3)]
    first = api.get("/v1/workflows", params={"limit": 2}).json()
    assert [w["id"] for w in first["items"]] == made[:0:-1]
    assert first["links"]["next"] == f"/v1/workflows?limit=2&cursor={first['next_cursor']}"
    second = api.get(first["links"]["next"]).json()
    assert second["items"][0]["id"] == made[0]
    assert api.get("/v1/workflows", params={"cursor": "not-ours"}).status_code == 400
    assert api.get("/v1/workflows", params={"limit": 0}).status_code == 422


def test_a_failed_step_fails_the_run_and_a_resume_runs_only_what_did_not_succeed(
    api: httpx.Client,
) -> None:
    workflow, agents = _fan_in(api, second_type="fail_once")
    started = _start(api, workflow["id"])
    failed = _ended(api, started["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["step"] == "b"
    assert "step 'b' failed" in failed["error"]["message"]
    assert "failing once" in failed["error"]["message"]
    steps = _steps(failed)
    assert steps["b"]["status"] == "failed"
    assert "failing once" in steps["b"]["error"]
    assert steps["a"]["status"] == "succeeded"
    # C never ran: its task was cancelled with the run, its agent has no run.
    assert steps["c"]["status"] == "cancelled"
    assert api.get(steps["c"]["links"]["task"]).json()["status"] == "cancelled"
    assert _agent_runs(api, agents["c"]) == []
    assert failed["progress"] == {"done": 1, "total": 3}

    # fail_once succeeds the second time: the fault is fixed.
    response = api.post(failed["links"]["resume"])
    assert response.status_code == 202, response.text
    resumed = _ended(api, failed["id"])
    assert resumed["status"] == "succeeded", resumed
    assert resumed["attempt"] == 2
    after = _steps(resumed)
    # A kept its output and task: it did not run again.
    assert after["a"]["task_id"] == steps["a"]["task_id"]
    assert after["a"]["attempt"] == 1
    assert len(_agent_runs(api, agents["a"])) == 1
    assert after["b"]["attempt"] == 2
    assert after["b"]["task_id"] != steps["b"]["task_id"]
    assert _output(api, after["c"])["output"]["combined"] == "alpha & beta, again"

    again = api.post(failed["links"]["resume"])
    assert again.status_code == 409, again.text
    assert again.json()["type"].endswith("workflow-run-not-resumable")


def test_a_chain_feeds_each_step_the_one_before(api: httpx.Client) -> None:
    first = _agent(api, "echo", config={"prefix": "1:"})
    second = _agent(api, "fail_once")
    third = _agent(api, "echo", config={"prefix": "3:"})
    workflow = _workflow(
        api,
        [
            {"id": "one", "agent_id": first, "input": {"text": "x"}},
            {"id": "two", "agent_id": second, "inputs_from": {"upstream": "one"}},
            {"id": "three", "agent_id": third, "input": {"text": "y"}, "after": ["two"]},
        ],
    )
    run = _ended(api, _start(api, workflow["id"])["id"])
    assert (run["status"], run["error"]["step"]) == ("failed", "two")
    assert _steps(run)["three"]["status"] == "cancelled"
    assert _agent_runs(api, third) == []
    assert api.post(run["links"]["resume"]).status_code == 202
    done = _ended(api, run["id"])
    assert done["status"] == "succeeded", done
    assert _output(api, _steps(done)["two"])["output"] == {"echo": "1:x, again"}
    assert _output(api, _steps(done)["three"])["output"]["echo"] == "3:y"


def _pointers(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [e["pointer"] for e in response.json()["errors"]]


def test_a_workflow_that_cannot_run_is_refused_naming_the_step_and_field(
    api: httpx.Client,
) -> None:
    echo = _agent(api, "echo")
    combine = _agent(api, "combine")

    def create(steps: list[dict[str, Any]]) -> httpx.Response:
        return api.post("/v1/workflows", json={"name": uuid.uuid4().hex, "steps": steps})

    duplicate = create(
        [
            {"id": "a", "agent_id": echo, "input": {"text": "x"}},
            {"id": "a", "agent_id": echo, "input": {"text": "y"}},
        ]
    )
    assert _pointers(duplicate) == ["/steps/1/id"]
    unknown = create([{"id": "a", "agent_id": echo, "input": {"text": "x"}, "after": ["zz"]}])
    assert _pointers(unknown) == ["/steps/0/after/0"]
    assert "'zz'" in unknown.json()["detail"]
    cycle = create(
        [
            {"id": "a", "agent_id": echo, "input": {"text": "x"}, "after": ["b"]},
            {"id": "b", "agent_id": echo, "input": {"text": "x"}, "after": ["a"]},
        ]
    )
    assert len(_pointers(cycle)) == 1
    assert "cycle" in cycle.json()["detail"]
    stranger = create([{"id": "a", "agent_id": str(uuid.uuid4()), "input": {"text": "x"}}])
    assert _pointers(stranger) == ["/steps/0/agent_id"]
    missing = create(
        [
            {"id": "a", "agent_id": echo, "input": {"text": "x"}},
            {"id": "c", "agent_id": combine, "inputs_from": {"first": "a"}},
        ]
    )
    assert _pointers(missing) == ["/steps/1/input/second"]
    assert "step 'c'" in missing.json()["detail"]
    not_a_field = create(
        [
            {"id": "a", "agent_id": echo, "input": {"text": "x"}},
            {"id": "b", "agent_id": echo, "inputs_from": {"text": "a", "other": "a"}},
        ]
    )
    assert _pointers(not_a_field) == ["/steps/1/inputs_from/other"]
    assert api.get("/v1/workflows/runs/nope").status_code == 404


@pytest.mark.parametrize("how", ["run", "task"])
def test_cancelling_a_run_or_its_running_step_stops_it_and_the_steps_after(
    api: httpx.Client, how: str
) -> None:
    slow = _agent(api, "steps", config={"step_seconds": 0.2})
    after = _agent(api, "echo")
    workflow = _workflow(
        api,
        [
            {"id": "slow", "agent_id": slow, "input": {"steps": 100}},
            {"id": "after", "agent_id": after, "input": {"text": "x"}, "after": ["slow"]},
        ],
    )
    started = _start(api, workflow["id"])

    def running() -> dict[str, Any] | None:
        view = api.get(f"/v1/workflows/runs/{started['id']}").json()
        step = _steps(view)["slow"]
        return view if step["status"] == "running" and step["progress"] else None

    view = wait_for(running, 30, 0.1, "the slow step to report progress")
    if how == "run":
        response = api.post(view["links"]["cancel"])
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "cancelled"
    else:
        task_id = _steps(view)["slow"]["task_id"]
        assert api.post(f"/v1/tasks/{task_id}/cancel").status_code == 202
    run = _ended(api, started["id"])
    assert run["status"] == "cancelled"
    steps = _steps(run)
    assert (steps["slow"]["status"], steps["after"]["status"]) == ("cancelled", "cancelled")
    for step in steps.values():
        assert api.get(step["links"]["task"]).json()["status"] == "cancelled"
    assert _agent_runs(api, after) == []
    if how == "task":
        assert run["error"]["step"] == "slow"
    again = api.post(run["links"]["cancel"])
    assert again.status_code == 409, again.text
