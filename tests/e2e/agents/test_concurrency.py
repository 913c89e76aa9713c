"""Per-agent concurrency end to end: two agents workers, runs that say when they ran.

The ``clock`` agent of the e2e plugin returns when its body started and ended,
as a run of its own or as a workflow's step; the limit holds when no two (or
three) of those intervals overlap, and the order holds when they start in
submission order. No test reads a duration.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, update

from aia_workers.backbone.keys import agent_limit_key, agent_parked_key
from aia_workers.db.agents import Agent
from tests.support import Process, Stack, wait_for, wait_status

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(agents_pair_stack: Stack) -> Iterator[httpx.Client]:
    with agents_pair_stack.client() as client:
        yield client


def _agent(api: httpx.Client, max_concurrency: int, step_seconds: float = 0.1) -> str:
    body = {
        "name": f"clock-{uuid.uuid4().hex[:8]}",
        "type": "clock",
        "config": {"step_seconds": step_seconds},
        "max_concurrency": max_concurrency,
    }
    response = api.post("/v1/agents", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def _run(api: httpx.Client, agent_id: str, steps: int = 8) -> str:
    response = api.post(f"/v1/agents/{agent_id}/runs", json={"input": {"steps": steps}})
    assert response.status_code == 202, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def _outputs(api: httpx.Client, run_ids: list[str], timeout: float = 90) -> list[dict[str, Any]]:
    results = []
    for run_id in run_ids:
        done = wait_status(api, run_id, {"succeeded", "failed", "cancelled"}, timeout)
        assert done["status"] == "succeeded", done
        results.append(done["result"])
    return results


def _most_at_once(outputs: list[dict[str, Any]]) -> int:
    """The most run bodies that were running at one instant."""
    edges = sorted(
        [(o["started"], 1) for o in outputs] + [(o["ended"], -1) for o in outputs],
        # An end and a start at the same instant do not overlap.
        key=lambda edge: (edge[0], edge[1]),
    )
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def _worker_of(stack: Stack, pid: int) -> Process:
    """The agents worker whose process tree holds ``pid``."""
    lineage = {pid, *(p.pid for p in psutil.Process(pid).parents())}
    (worker,) = [
        p for p in stack.processes if p.name.startswith("worker-agents") and p.popen.pid in lineage
    ]
    return worker


def test_one_at_a_time_in_submission_order(api: httpx.Client) -> None:
    agent = _agent(api, max_concurrency=1)
    first = _run(api, agent)
    # The others queue behind a run that holds the slot, so their order is the line's.
    wait_status(api, first, {"running"})
    rest = [_run(api, agent) for _ in range(5)]
    for run_id in rest:
        assert api.get(f"/v1/tasks/{run_id}").json()["status"] == "queued"
    outputs = _outputs(api, [first, *rest])
    assert _most_at_once(outputs) == 1
    starts = [o["started"] for o in outputs]
    assert starts == sorted(starts)


def test_a_retried_run_gives_its_slot_back_and_keeps_its_place(api: httpx.Client) -> None:
    agent = _agent(api, max_concurrency=1, step_seconds=0.05)
    response = api.post(
        f"/v1/agents/{agent}/runs", json={"input": {"steps": 2, "transient_failures": 1}}
    )
    assert response.status_code == 202, response.text
    flaky = response.json()["id"]
    rest = [_run(api, agent, steps=2) for _ in range(3)]
    # The retry waits in line like any run: all end, never two at once.
    outputs = _outputs(api, [flaky, *rest])
    assert _most_at_once(outputs) == 1
    assert api.get(f"/v1/tasks/{flaky}").json()["attempts"] == 2


def test_at_most_max_concurrency_at_once(api: httpx.Client) -> None:
    agent = _agent(api, max_concurrency=2)
    runs = [_run(api, agent) for _ in range(6)]
    assert _most_at_once(_outputs(api, runs)) == 2


def test_an_agents_limit_is_stored_when_it_is_created_and_its_runs_start_under_it(
    agents_pair_stack: Stack, api: httpx.Client
) -> None:
    agent = _agent(api, max_concurrency=2)
    assert agents_pair_stack.redis().get(agent_limit_key("default", agent)) == "2"
    # Its row says 1 now, behind the API's back: the starts keep to the stored 2,
    # which they read instead of the database.
    engine = create_engine(agents_pair_stack.env["AIA_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(update(Agent).where(Agent.id == agent).values(max_concurrency=1))
    finally:
        engine.dispose()
    assert _most_at_once(_outputs(api, [_run(api, agent) for _ in range(4)])) == 2


def test_an_agent_whose_stored_limit_was_lost_is_held_to_its_own(
    agents_pair_stack: Stack, api: httpx.Client
) -> None:
    agent = _agent(api, max_concurrency=1)
    line = agents_pair_stack.redis()
    line.delete(agent_limit_key("default", agent))
    # The first start reads the limit from the database and stores it again.
    assert _most_at_once(_outputs(api, [_run(api, agent) for _ in range(3)])) == 1
    assert line.get(agent_limit_key("default", agent)) == "1"


def test_a_parked_run_cancelled_never_runs(agents_pair_stack: Stack, api: httpx.Client) -> None:
    agent = _agent(api, max_concurrency=1)
    first = _run(api, agent, steps=20)
    wait_status(api, first, {"running"})
    parked, last = _run(api, agent), _run(api, agent)
    line = agents_pair_stack.redis()
    wait_for(
        lambda: line.zscore(agent_parked_key("default", agent), last) is not None,
        30,
        what="both runs to be parked",
    )
    cancelled = api.post(f"/v1/tasks/{parked}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    _outputs(api, [first, last])
    assert agents_pair_stack.redis().get(f"aia-e2e:clock:{parked}") is None
    assert api.get(f"/v1/tasks/{parked}").json()["status"] == "cancelled"


def test_raising_the_limit_starts_parked_runs_at_once(api: httpx.Client) -> None:
    agent = _agent(api, max_concurrency=1, step_seconds=0.2)
    long = _run(api, agent, steps=100)
    wait_status(api, long, {"running"})
    waiting = [_run(api, agent) for _ in range(2)]
    changed = api.patch(f"/v1/agents/{agent}", json={"max_concurrency": 3})
    assert changed.status_code == 200, changed.text
    # Both start while the long run still holds its slot.
    for run_id in waiting:
        wait_status(api, run_id, {"running", "succeeded"})
    assert api.get(f"/v1/tasks/{long}").json()["status"] == "running"
    api.post(f"/v1/tasks/{long}/cancel")
    wait_status(api, long, {"cancelled"})
    _outputs(api, waiting)


def test_a_killed_workers_slot_frees_after_its_lease_and_the_line_moves_on(
    agents_pair_stack: Stack, api: httpx.Client
) -> None:
    agent = _agent(api, max_concurrency=1)
    doomed = _run(api, agent, steps=60)
    wait_status(api, doomed, {"running"})
    rest = [_run(api, agent) for _ in range(3)]
    notes = agents_pair_stack.redis()
    pid = int(wait_for(lambda: notes.get(f"aia-e2e:clock:{doomed}"), 30, what="the run's pid"))
    victim = _worker_of(agents_pair_stack, pid)
    victim.kill()
    agents_pair_stack.processes.remove(victim)
    try:
        # The surviving worker's sweep frees the dead run's slot one lease later,
        # and the parked runs take it in turn.
        outputs = _outputs(api, rest)
        assert _most_at_once(outputs) == 1
        # The killed run's message comes back from the broker; it waits its turn
        # and runs again, alone too.
        again = _outputs(api, [doomed], timeout=120)
        assert _most_at_once([*outputs, *again]) == 1
    finally:
        agents_pair_stack.start_worker(f"agents-c-{uuid.uuid4().hex[:6]}", "agents", concurrency=2)


def test_workflow_steps_wait_for_their_agents_slot_and_the_chord_goes_on(
    agents_pair_stack: Stack, api: httpx.Client
) -> None:
    agent = _agent(api, max_concurrency=1)
    run = _run(api, agent, steps=15)
    wait_status(api, run, {"running"})
    # Two steps of the same agent side by side, then a third fed by both: a chord.
    steps = [
        {"id": "a", "agent_id": agent, "input": {"steps": 2}},
        {"id": "b", "agent_id": agent, "input": {"steps": 2}},
        {
            "id": "c",
            "agent_id": agent,
            "input": {"steps": 1},
            "inputs_from": {"first": "a", "second": "b"},
        },
    ]
    created = api.post("/v1/workflows", json={"name": f"wf-{agent}", "steps": steps})
    assert created.status_code == 201, created.text
    started = api.post(f"/v1/workflows/{created.json()['id']}/runs")
    assert started.status_code == 202, started.text
    tasks = {s["id"]: s["task_id"] for s in started.json()["steps"]}
    line = agents_pair_stack.redis()
    parked = agent_parked_key("default", agent)
    wait_for(
        lambda: all(line.zscore(parked, tasks[s]) is not None for s in "ab"),
        30,
        what="both steps of the chord's header to wait in the agent's line",
    )
    assert api.get(f"/v1/tasks/{run}").json()["status"] == "running"
    for step in "abc":
        assert api.get(f"/v1/tasks/{tasks[step]}").json()["status"] == "queued"

    def ended() -> dict[str, Any] | None:
        view = api.get(started.headers["location"]).json()
        return view if view["status"] in {"succeeded", "failed", "cancelled"} else None

    view = wait_for(ended, 60, 0.2, "the workflow run to end")
    assert view["status"] == "succeeded", view
    (first,) = _outputs(api, [run])
    said = {s["id"]: api.get(s["links"]["self"]).json() for s in view["steps"]}
    # The chord's body got both outputs of its header, each as its step said it.
    assert said["c"]["input"]["first"] == said["a"]["output"]
    assert said["c"]["input"]["second"] == said["b"]["output"]
    # The steps started only once the run had ended, and one at a time.
    outputs = [first, *(said[s]["output"] for s in "abc")]
    assert _most_at_once(outputs) == 1
    assert min(said[s]["output"]["started"] for s in "ab") >= first["ended"]
