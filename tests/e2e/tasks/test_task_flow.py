"""Submit over HTTP, run on a real worker, follow the events back: on both brokers."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.support import Stack, sse_events, submit, wait_for, wait_status

pytestmark = pytest.mark.e2e


def test_sleep_streams_queued_started_progress_succeeded(api: httpx.Client) -> None:
    task = submit(api, {"seconds": 0.3, "steps": 3})
    assert task["status"] == "queued"
    assert task["queue"] == "default"
    events = list(sse_events(api, task["links"]["events"]))

    names = [e["event"] for e in events]
    assert names == ["queued", "started", "progress", "progress", "progress", "succeeded"]
    assert [int(e["id"]) for e in events] == list(range(1, 7))
    assert [e["data"]["seq"] for e in events] == list(range(1, 7))
    assert [e["data"]["data"]["current"] for e in events[2:5]] == [1, 2, 3]
    result = events[-1]["data"]["data"]["result"]
    assert result["steps"] == 3
    assert result["slept_seconds"] >= 0.3

    view = api.get(f"/v1/tasks/{task['id']}").json()
    assert view["status"] == "succeeded"
    assert view["result"] == result
    assert view["attempts"] == 1
    assert view["progress"] == {"current": 3, "total": 3, "message": "step 3 of 3"}


def test_submit_answers_202_with_location_and_links(api: httpx.Client) -> None:
    response = api.post("/v1/tasks", json={"type": "diagnostics.sleep", "payload": {"seconds": 0}})
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/v1/tasks/{body['id']}"
    assert body["links"] == {
        "self": f"/v1/tasks/{body['id']}",
        "events": f"/v1/tasks/{body['id']}/events",
    }
    wait_status(api, body["id"], {"succeeded"})


def test_failing_task_ends_failed_with_its_message(api: httpx.Client) -> None:
    task = submit(api, {"seconds": 0, "steps": 2, "fail": True})
    events = list(sse_events(api, task["links"]["events"]))
    assert [e["event"] for e in events] == ["queued", "started", "progress", "progress", "failed"]
    error = events[-1]["data"]["data"]["error"]
    assert error["type"] == "TaskFailure"
    assert "failed on request" in error["message"]
    view = api.get(f"/v1/tasks/{task['id']}").json()
    assert view["status"] == "failed"
    assert view["error"] == error


def test_cancel_a_running_task(api: httpx.Client) -> None:
    task = submit(api, {"seconds": 30, "steps": 30})
    wait_status(api, task["id"], {"running"})
    response = api.post(f"/v1/tasks/{task['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    events = list(sse_events(api, task["links"]["events"]))
    assert events[-1]["event"] == "cancelled"
    assert events[-1]["data"]["data"]["reason"] == "cancelled by request"
    # The worker stopped the body: no further progress turns up afterwards.
    seq = api.get(f"/v1/tasks/{task['id']}").json()["seq"]
    with pytest.raises(TimeoutError):
        wait_for(lambda: api.get(f"/v1/tasks/{task['id']}").json()["seq"] != seq, 2.5)
    again = api.post(f"/v1/tasks/{task['id']}/cancel")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


def test_cancel_a_queued_task_before_it_starts(api: httpx.Client) -> None:
    task = submit(api, {"seconds": 0}, countdown=2)
    assert api.post(f"/v1/tasks/{task['id']}/cancel").status_code == 202
    # Past the countdown the worker receives the message and must skip it.
    with pytest.raises(TimeoutError):
        wait_for(
            lambda: api.get(f"/v1/tasks/{task['id']}").json()["attempts"] > 0,
            4.0,
            what="the cancelled task to start",
        )
    events = list(sse_events(api, task["links"]["events"]))
    assert [e["event"] for e in events] == ["queued", "cancelled"]


def test_priority_and_countdown_are_accepted(api: httpx.Client) -> None:
    task = submit(api, {"seconds": 0}, priority=9, countdown=0.5)
    assert task["priority"] == 9
    assert task["eta"] is not None
    view = wait_status(api, task["id"], {"succeeded"})
    assert view["started_at"] >= task["eta"]


def test_priority_and_eta_show_in_the_reply_the_task_and_the_list(api: httpx.Client) -> None:
    task = submit(api, {"seconds": 0}, priority=7, countdown=0.5)
    assert task["priority"] == 7
    assert task["eta"] is not None
    view = api.get(f"/v1/tasks/{task['id']}").json()
    assert (view["priority"], view["eta"]) == (7, task["eta"])

    def listed() -> dict | None:
        items = api.get("/v1/tasks?limit=200").json()["items"]
        return next((i for i in items if i["id"] == task["id"]), None)

    item = wait_for(listed, 20, 0.2, "the task in the recorded list")
    assert item["priority"] == 7
    assert item["eta"] is not None
    assert datetime.fromisoformat(item["eta"]) == datetime.fromisoformat(task["eta"])


def test_stack_workers_show_in_status(stack: Stack, api: httpx.Client) -> None:
    body = api.get("/status").json()
    assert body["status"] == "ok", body
    assert body["checks"]["workers"]["count"]["default"] >= 1
    assert set(body["checks"]["broker"]["queue_depths"]) >= {
        "agents",
        "ml",
        "drift",
        "webhooks",
        "default",
    }


def test_transient_failure_is_retried_then_succeeds(api: httpx.Client) -> None:
    task = submit(api, {"seconds": 0, "steps": 1, "transient_failures": 1})
    events = list(sse_events(api, task["links"]["events"]))
    assert [e["event"] for e in events][:3] == ["queued", "started", "retrying"], api.get(
        f"/v1/tasks/{task['id']}"
    ).json()["error"]
    assert [e["event"] for e in events] == [
        "queued",
        "started",
        "retrying",
        "started",
        "progress",
        "succeeded",
    ]
    assert "transient failure 1 of 1" in events[2]["data"]["data"]["reason"]
    assert events[2]["data"]["status"] == "retrying"
    assert [e["data"]["data"].get("attempt") for e in events if e["event"] == "started"] == [1, 2]
    assert api.get(f"/v1/tasks/{task['id']}").json()["attempts"] == 2
