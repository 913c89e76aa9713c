"""The monitoring agent end to end: real failed tasks, a run on the agents worker, alerts out;
and the agent run by a schedule under a real beat."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import submit, wait_for, wait_status

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(agents_stack) -> Iterator[httpx.Client]:
    with agents_stack.client() as client:
        yield client


def _recorded(api: httpx.Client, status: str, count: int) -> None:
    # The rule reads task history, which the recorder writes a batch behind the live record.
    def enough() -> bool:
        page = api.get(f"/v1/tasks?type=diagnostics.sleep&status={status}&limit=200").json()
        return len(page["items"]) >= count

    wait_for(enough, 30, 0.2, f"{count} {status} tasks in the history")


def _run(api: httpx.Client, agent_id: str) -> dict[str, Any]:
    response = api.post(f"/v1/agents/{agent_id}/runs", json={"input": {}})
    assert response.status_code == 202, response.text
    done = wait_status(api, response.json()["id"], {"succeeded", "failed"}, timeout=60)
    assert done["status"] == "succeeded", done
    return done["result"]  # type: ignore[no-any-return]


def _alerts(api: httpx.Client, endpoint: str) -> list[dict[str, Any]]:
    page = api.get(f"/v1/webhooks/{endpoint}/messages?event_type=alert.fired&limit=100")
    assert page.status_code == 200, page.text
    return sorted(page.json()["items"], key=lambda m: m["created_at"])


def test_a_spike_of_failed_tasks_fires_one_alert_and_successes_resolve_it(
    api: httpx.Client,
) -> None:
    hook = api.post(
        "/v1/webhooks", json={"url": "https://example.com/aia-alerts", "events": ["alert.fired"]}
    )
    assert hook.status_code == 201, hook.text
    endpoint = hook.json()["id"]
    rule = {
        "name": "sleep failing",
        "signal": "failure_rate",
        "task_type": "diagnostics.sleep",
        "window_seconds": 3600,
        "op": "gt",
        "threshold": 0.5,
        "min_samples": 4,
    }
    created = api.post(
        "/v1/agents",
        json={
            "name": f"watch-{uuid.uuid4().hex[:8]}",
            "type": "monitoring",
            "config": {"rules": [rule]},
        },
    )
    assert created.status_code == 201, created.text
    agent_id = created.json()["id"]

    # Nothing ended yet: no data, no alert.
    quiet = _run(api, agent_id)
    assert quiet["rules"][0]["state"] == "no_data"

    failed = [submit(api, {"seconds": 0, "fail": True})["id"] for _ in range(5)]
    for task_id in failed:
        wait_status(api, task_id, {"failed"})
    _recorded(api, "failed", 5)
    fired = _run(api, agent_id)
    assert fired["rules"][0]["state"] == "firing"
    assert fired["rules"][0]["value"] == 1.0
    assert fired["alerts"] == [{"rule": "sleep failing", "state": "firing"}]
    [alert] = _alerts(api, endpoint)
    assert alert["payload"]["state"] == "firing"
    assert alert["payload"]["agent_id"] == agent_id
    assert (alert["payload"]["signal"], alert["payload"]["threshold"]) == ("failure_rate", 0.5)

    # Still failing a run later: nothing more is sent.
    again = _run(api, agent_id)
    assert again["rules"][0]["state"] == "firing"
    assert again["alerts"] == []
    assert len(_alerts(api, endpoint)) == 1

    ok = [submit(api, {"seconds": 0})["id"] for _ in range(10)]
    for task_id in ok:
        wait_status(api, task_id, {"succeeded"})
    _recorded(api, "succeeded", 10)
    resolved = _run(api, agent_id)
    assert resolved["rules"][0]["state"] == "ok"
    assert resolved["alerts"] == [{"rule": "sleep failing", "state": "resolved"}]
    states = [m["payload"]["state"] for m in _alerts(api, endpoint)]
    assert states == ["firing", "resolved"]


def test_a_schedule_under_beat_runs_the_monitoring_agent(agents_stack, api: httpx.Client) -> None:
    rule = {
        "name": "ml backlog",
        "signal": "queue_depth",
        "queue": "ml",
        "op": "ge",
        "threshold": 1_000_000,
    }
    made = api.post(
        "/v1/agents",
        json={
            "name": f"watch-{uuid.uuid4().hex[:8]}",
            "type": "monitoring",
            "config": {"rules": [rule]},
        },
    )
    assert made.status_code == 201, made.text
    agent_id = made.json()["id"]
    beat = agents_stack.start_beat("monitoring", {"AIA_SYSTEM_SCHEDULES": "[]"})
    try:
        schedule = api.post(
            "/v1/schedules",
            json={
                "name": f"watch-{agent_id}",
                "type": "agents.run",
                "payload": {"agent_id": agent_id},
                "interval_seconds": 1,
            },
        )
        assert schedule.status_code == 201, schedule.text

        def ran() -> dict[str, Any] | None:
            items = api.get(f"/v1/agents/{agent_id}/runs").json()["items"]
            done = [r for r in items if r["status"] == "succeeded"]
            return done[0] if done else None

        run = wait_for(ran, 60, 0.5, "a scheduled run of the monitoring agent")
        api.patch(schedule.json()["links"]["self"], json={"enabled": False})
    finally:
        beat.stop()
    result = api.get(f"/v1/tasks/{run['id']}").json()["result"]
    [verdict] = result["rules"]
    assert verdict["name"] == "ml backlog"
    assert verdict["state"] == "ok"
    assert verdict["value"] == 0
