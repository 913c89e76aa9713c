"""The HTTP contract: idempotency, resume, WebSocket, listing, errors, ops routes."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.support import Stack, free_port, sse_events, submit, wait_for, wait_status

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def test_idempotency_key_returns_the_first_task(redis_api: httpx.Client) -> None:
    key = f"order-{time.time_ns()}"
    first = submit(redis_api, {"seconds": 0}, headers={"Idempotency-Key": key})
    second = redis_api.post(
        "/v1/tasks",
        json={"type": "diagnostics.sleep", "payload": {"seconds": 0}},
        headers={"Idempotency-Key": key},
    )
    assert second.status_code == 202
    assert second.json()["id"] == first["id"]
    assert second.headers["idempotent-replayed"] == "true"
    clash = redis_api.post(
        "/v1/tasks",
        json={"type": "diagnostics.sleep", "payload": {"seconds": 1}},
        headers={"Idempotency-Key": key},
    )
    assert clash.status_code == 409
    assert clash.headers["content-type"] == PROBLEM
    assert clash.json()["task_id"] == first["id"]


def test_same_body_without_a_key_makes_two_tasks(redis_api: httpx.Client) -> None:
    a = submit(redis_api, {"seconds": 0})
    b = submit(redis_api, {"seconds": 0})
    assert a["id"] != b["id"]


def test_sse_resumes_after_last_event_id(redis_api: httpx.Client) -> None:
    task = submit(redis_api, {"seconds": 0, "steps": 4})
    wait_status(redis_api, task["id"], {"succeeded"})
    events = list(sse_events(redis_api, task["links"]["events"], headers={"Last-Event-ID": "3"}))
    assert [int(e["id"]) for e in events] == [4, 5, 6, 7]
    assert events[-1]["event"] == "succeeded"
    assert next(iter(sse_events(redis_api, f"{task['links']['events']}?after=6")))["event"] == (
        "succeeded"
    )


def test_sse_subscriber_sees_events_that_happen_while_it_follows(
    redis_api: httpx.Client,
) -> None:
    task = submit(redis_api, {"seconds": 1.0, "steps": 5})
    events = list(sse_events(redis_api, task["links"]["events"]))
    assert [e["event"] for e in events][-1] == "succeeded"
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))


def test_sse_rejects_a_bad_last_event_id_and_unknown_tasks(redis_api: httpx.Client) -> None:
    task = submit(redis_api, {"seconds": 0})
    bad = redis_api.get(task["links"]["events"], headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == PROBLEM
    missing = redis_api.get("/v1/tasks/00000000-0000-0000-0000-000000000000/events")
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:aia:problem:task-not-found"


def _auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.api_key}"}


def _ws_url(stack: Stack) -> str:
    return stack.api_url.replace("http://", "ws://") + "/v1/ws"


def test_websocket_follows_several_tasks_on_one_connection(
    redis_stack: Stack, redis_api: httpx.Client
) -> None:
    a = submit(redis_api, {"seconds": 0.4, "steps": 2})
    b = submit(redis_api, {"seconds": 0.2, "steps": 1, "fail": True})
    seen: dict[str, list[str]] = {a["id"]: [], b["id"]: []}
    with connect(
        _ws_url(redis_stack), open_timeout=10, additional_headers=_auth(redis_stack)
    ) as ws:
        ws.send(json.dumps({"action": "subscribe", "task_id": a["id"]}))
        ws.send(json.dumps({"action": "subscribe", "task_id": b["id"]}))
        done: set[str] = set()
        while done != {a["id"], b["id"]}:
            message = json.loads(ws.recv(timeout=30))
            if message["type"] != "event":
                assert message["type"] == "subscribed"
                continue
            seen[message["task_id"]].append(message["event"])
            if message["status"] in ("succeeded", "failed", "cancelled"):
                done.add(message["task_id"])
    assert seen[a["id"]] == ["queued", "started", "progress", "progress", "succeeded"]
    assert seen[b["id"]] == ["queued", "started", "progress", "failed"]


def test_websocket_unsubscribe_and_errors(redis_stack: Stack, redis_api: httpx.Client) -> None:
    task = submit(redis_api, {"seconds": 1.5, "steps": 3})
    with connect(
        _ws_url(redis_stack), open_timeout=10, additional_headers=_auth(redis_stack)
    ) as ws:
        ws.send("not json")
        assert json.loads(ws.recv(timeout=10))["status"] == 400
        ws.send(json.dumps({"action": "subscribe", "task_id": "no-such-task"}))
        assert json.loads(ws.recv(timeout=10))["status"] == 404
        ws.send(json.dumps({"action": "subscribe", "task_id": task["id"]}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
        first = json.loads(ws.recv(timeout=10))
        assert first["event"] == "queued"
        ws.send(json.dumps({"action": "unsubscribe", "task_id": task["id"]}))
        messages = []
        while True:
            message = json.loads(ws.recv(timeout=10))
            messages.append(message)
            if message["type"] == "unsubscribed":
                break
        wait_status(redis_api, task["id"], {"succeeded"})
        # Nothing of the task arrives after the unsubscribe was confirmed.
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.0)
    assert all(m.get("event") != "succeeded" for m in messages)


def test_get_and_list_tasks_with_filters_and_cursor(redis_api: httpx.Client) -> None:
    ids = [submit(redis_api, {"seconds": 0, "steps": 1})["id"] for _ in range(5)]
    failing = submit(redis_api, {"seconds": 0, "fail": True})["id"]
    for task_id in [*ids, failing]:
        wait_status(redis_api, task_id, {"succeeded", "failed"})

    def recorded() -> bool:
        listed = redis_api.get("/v1/tasks", params={"limit": 200}).json()["items"]
        final = {t["id"]: t["status"] for t in listed}
        return all(final.get(i) == "succeeded" for i in ids) and final.get(failing) == "failed"

    wait_for(recorded, 15, what="the recorder to write the tasks")

    pages, cursor = [], None
    while True:
        params = {"limit": 2, "status": "succeeded"}
        if cursor:
            params["cursor"] = cursor
        body = redis_api.get("/v1/tasks", params=params).json()
        pages.append([t["id"] for t in body["items"]])
        cursor = body["next_cursor"]
        if not cursor:
            break
        assert body["links"]["next"].endswith(f"cursor={cursor}")
    flat = [i for page in pages for i in page]
    assert len(flat) == len(set(flat)), "a task appeared on two pages"
    assert set(ids) <= set(flat)
    assert failing not in flat
    assert all(len(page) <= 2 for page in pages)

    failed = redis_api.get("/v1/tasks", params={"status": "failed"}).json()["items"]
    assert failing in [t["id"] for t in failed]
    record = next(t for t in failed if t["id"] == failing)
    assert record["error"]["type"] == "TaskFailure"
    assert record["payload"] == {"seconds": 0.0, "steps": 1, "fail": True, "transient_failures": 0}

    by_type = redis_api.get("/v1/tasks", params={"type": "no.such.type"}).json()
    assert by_type["items"] == []
    assert redis_api.get("/v1/tasks", params={"status": "nope"}).status_code == 422
    assert redis_api.get("/v1/tasks", params={"limit": "0"}).status_code == 422
    assert redis_api.get("/v1/tasks", params={"cursor": "garbage"}).status_code == 400
    assert redis_api.get("/v1/tasks/unknown-id").status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type", "status", "pointer"),
    [
        ({"type": "no.such.task", "payload": {}}, "application/json", 422, "/type"),
        (
            {"type": "diagnostics.sleep", "payload": {"seconds": "soon"}},
            "application/json",
            422,
            "/payload/seconds",
        ),
        ({"type": "diagnostics.sleep", "payload": {}}, "application/json", 422, "/payload/seconds"),
        (
            {"type": "diagnostics.sleep", "payload": {"seconds": 1, "extra": 1}},
            "application/json",
            422,
            "/payload/extra",
        ),
        (
            {"type": "diagnostics.sleep", "payload": {"seconds": -1}},
            "application/json",
            422,
            "/payload/seconds",
        ),
        ({"payload": {"seconds": 1}}, "application/json", 422, "/type"),
        (
            {"type": "diagnostics.sleep", "payload": {"seconds": 1}, "priority": 12},
            "application/json",
            422,
            "/priority",
        ),
        (
            {"type": "diagnostics.sleep", "payload": {"seconds": 1}, "countdown": 999999},
            "application/json",
            422,
            "/countdown",
        ),
        ({"type": "diagnostics.sleep", "payload": [1, 2]}, "application/json", 422, "/payload"),
        ([1, 2, 3], "application/json", 422, None),
        ({"type": "diagnostics.sleep", "payload": {"seconds": 1}}, "text/plain", 415, None),
    ],
)
def test_bad_submissions_get_a_problem_and_create_nothing(
    redis_api: httpx.Client,
    body: object,
    content_type: str,
    status: int,
    pointer: str | None,
) -> None:
    response = redis_api.post(
        "/v1/tasks", content=json.dumps(body), headers={"content-type": content_type}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("urn:aia:problem:")
    assert problem["detail"]
    if pointer:
        assert pointer in [e["pointer"] for e in problem["errors"]]


def test_malformed_empty_and_oversized_bodies(redis_api: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    assert redis_api.post("/v1/tasks", content=b"{nope", headers=headers).status_code == 400
    assert redis_api.post("/v1/tasks", content=b"", headers=headers).status_code == 400
    assert redis_api.post("/v1/tasks", content=b"\xff\xfe", headers=headers).status_code == 400
    big = json.dumps({"type": "diagnostics.sleep", "payload": {"seconds": 1, "x": "a" * 2_000_000}})
    response = redis_api.post("/v1/tasks", content=big, headers=headers)
    assert response.status_code == 413
    assert response.json()["max_bytes"] == 1_048_576

    def chunks():  # no Content-Length: the limit holds on the streamed body too
        for _ in range(30):
            yield b" " * 65536

    response = redis_api.post("/v1/tasks", content=chunks(), headers=headers)
    assert response.status_code == 413


def test_unknown_route_and_method(redis_api: httpx.Client) -> None:
    missing = redis_api.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    wrong = redis_api.delete("/v1/tasks")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"] == PROBLEM


def test_health_and_metrics(redis_api: httpx.Client) -> None:
    assert redis_api.get("/health").json() == {"status": "ok"}
    submit(redis_api, {"seconds": 0})
    redis_api.post("/v1/tasks", json={"type": "nope"})
    text = redis_api.get("/metrics").text
    assert 'aia_tasks_submitted_total{queue="default",type="diagnostics.sleep"}' in text
    assert 'aia_http_requests_total{method="POST",route="/v1/tasks",status="202"}' in text
    assert 'aia_http_requests_total{method="POST",route="/v1/tasks",status="422"}' in text
    assert (
        'aia_http_request_duration_seconds_bucket{le="0.05",method="POST",route="/v1/tasks"}'
        in text
    )
    # Task ids never become labels.
    assert "/v1/tasks/{task_id}" in text or 'route="/v1/tasks"' in text


def test_redis_down_gives_503_with_retry_after(redis_stack: Stack) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    proc, url = redis_stack.start_api(env={"AIA_REDIS_URL": dead, "AIA_BROKER_URL": dead})
    try:
        headers = {"Authorization": f"Bearer {redis_stack.api_key}"}
        with httpx.Client(base_url=url, timeout=10, headers=headers) as client:
            response = client.post(
                "/v1/tasks", json={"type": "diagnostics.sleep", "payload": {"seconds": 0}}
            )
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
            assert response.headers["content-type"] == PROBLEM
            assert "Redis" in response.json()["detail"]
            assert client.get("/v1/tasks/x").status_code == 503
            status = client.get("/status")
            assert status.status_code == 503
            assert status.json()["checks"]["redis"]["ok"] is False
            # Validation still answers without Redis: bad input is the caller's 4xx.
            assert client.post("/v1/tasks", json={"type": "nope"}).status_code == 422
            assert client.get("/health").status_code == 200
    finally:
        proc.stop()


def test_database_down_gives_503(redis_stack: Stack) -> None:
    dead = f"postgresql+psycopg://root@127.0.0.1:{free_port()}/nothing"
    proc, url = redis_stack.start_api(env={"AIA_DATABASE_URL": dead})
    try:
        headers = {"Authorization": f"Bearer {redis_stack.api_key}"}
        with httpx.Client(base_url=url, timeout=15, headers=headers) as client:
            # A key this process has not seen yet is checked against the database.
            for response in (
                client.get("/v1/tasks"),
                client.post(
                    "/v1/tasks", json={"type": "diagnostics.sleep", "payload": {"seconds": 0}}
                ),
            ):
                assert response.status_code == 503
                assert response.headers["retry-after"] == "5"
                assert "database" in response.json()["detail"]
            assert client.get("/health").status_code == 200
    finally:
        proc.stop()


def test_aia_worker_command_starts_a_queue_worker(redis_stack: Stack) -> None:
    import sys
    from pathlib import Path

    hostname = f"cli-default-{time.time_ns()}@testhost"
    aia = str(Path(sys.executable).parent / "aia")
    proc = redis_stack._spawn(
        "worker-cli",
        [aia, "worker", "--queue", "default", "--hostname", hostname, "--concurrency", "1"],
    )
    client = redis_stack.redis()
    try:
        wait_for(lambda: client.hget("aia:workers", hostname), 60, what="aia worker to register")
        entry = json.loads(client.hget("aia:workers", hostname))
        assert entry["queues"] == ["default"]
    finally:
        proc.stop()
    # A clean shutdown leaves the registry.
    assert client.hget("aia:workers", hostname) is None
