"""A PostgreSQL outage under submit load: submits go on, history waits, nothing is lost.

The database is a private cluster (tests/pgserver.py) that is really stopped
and started again; everything else is the usual stack of real processes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from aia_workers.backbone.keys import RECORDER_DEAD_LETTERS as DEAD_LETTERS
from aia_workers.backbone.keys import RECORDER_STREAM
from aia_workers.backbone.recorder import GROUP
from tests.chaos import SubmitLoad, wait_all_terminal
from tests.conftest import _claim_redis_db, _release
from tests.pgserver import PostgresServer, running_postgres
from tests.support import (
    TEST_PASSWORD,
    Stack,
    private_stack,
    sse_events,
    submit,
    wait_for,
    wait_status,
)

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

# bench/ holds the database down for 60 s; here long enough for cached
# credentials to lapse and the recorder to back off a few times.
OUTAGE_SECONDS = 10
# Short, so cached credentials lapse during the outage and only the stale
# rule keeps their callers in.
AUTH_CACHE_SECONDS = 2
# The database-backed listings: each answers 503 while the database is down.
LISTINGS = (
    "/v1/tasks",
    "/v1/audit",
    "/v1/keys",
    "/v1/ml/datasets",
    "/v1/ml/experiments",
    "/v1/ml/models",
    "/v1/webhooks",
)


@dataclass
class OutageStack:
    stack: Stack
    database: PostgresServer


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutageStack]:
    tmp = tmp_path_factory.mktemp("database-outage")
    with running_postgres() as database:
        redis_url = _claim_redis_db()
        stack: Stack | None = None
        try:
            stack = private_stack(
                tmp,
                redis_url,
                database_url=database.createdb("aia"),
                role="admin",
                env={
                    "AIA_AUTH_CACHE_SECONDS": str(AUTH_CACHE_SECONDS),
                    "AIA_AUTH_RATE_LIMIT_PER_MINUTE": "100000",
                },
            )
            stack.start_recorder()
            stack.start_worker(f"default-{tmp.name}", concurrency=4)
            yield OutageStack(stack, database)
        finally:
            if stack is not None:
                stack.stop()
            _release(redis_url)


def _problem(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()  # type: ignore[no-any-return]


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, f"{response.request.url}: {response.text}"
    assert int(response.headers["retry-after"]) > 0
    assert _problem(response)["status"] == 503


def _history(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """Every task in ``GET /v1/tasks``, following ``links.next``."""
    seen: dict[str, dict[str, Any]] = {}
    url: str | None = "/v1/tasks?limit=200"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        seen.update((item["id"], item) for item in page["items"])
        url = page["links"].get("next")
    return seen


def _websocket_events(stack: Stack, token: str, task_id: str) -> list[dict[str, Any]]:
    """A task's events over the WebSocket, authenticated the browser's way (a stream ticket)."""
    ticket = httpx.post(
        f"{stack.api_url}/v1/streams/tickets", headers={"Authorization": f"Bearer {token}"}
    )
    assert ticket.status_code == 201, ticket.text
    url = stack.api_url.replace("http://", "ws://") + f"/v1/ws?ticket={ticket.json()['ticket']}"
    events: list[dict[str, Any]] = []
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
        while not events or events[-1]["status"] not in ("succeeded", "failed", "cancelled"):
            events.append(json.loads(ws.recv(timeout=30)))
    return events


def _login(stack: Stack) -> str:
    username = stack.create_user("operator")
    response = httpx.post(
        f"{stack.api_url}/v1/auth/token", json={"username": username, "password": TEST_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_submits_ride_through_a_database_outage_and_history_catches_up(
    outage_stack: OutageStack,
) -> None:
    stack, database = outage_stack.stack, outage_stack.database
    token = _login(stack)
    with stack.client() as client, stack.client(token) as bearer:
        # Both credentials are verified against the database once, before it goes.
        assert client.get("/v1/tasks").status_code == 200
        assert bearer.get("/v1/tasks").status_code == 200
        load = SubmitLoad(stack, clients=3, payload={"seconds": 0.01}).start()
        wait_for(lambda: len(load.accepted) >= 20, 30, what="load to get going")

        database.stop()
        down_at = time.monotonic()
        # Past the credential cache: from here on only the stale rule lets callers in.
        time.sleep(AUTH_CACHE_SECONDS + 1)
        for path in LISTINGS:
            _unavailable(client.get(path))
        # An access token: its account is cached like a key.
        mine = [submit(bearer, {"seconds": 0.01})["id"] for _ in range(3)]
        assert bearer.get(f"/v1/tasks/{mine[0]}").status_code == 200
        # Status, stream and cancel need only Redis.
        streamed = submit(client, {"seconds": 0.2, "steps": 2})
        events = list(sse_events(client, streamed["links"]["events"]))
        assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["event"] == "succeeded"
        followed = submit(bearer, {"seconds": 0.2, "steps": 2})
        messages = _websocket_events(stack, token, followed["id"])
        assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
        assert messages[-1]["event"] == "succeeded"
        long = submit(client, {"seconds": 30, "steps": 30})
        assert client.get(f"/v1/tasks/{long['id']}").status_code == 200
        cancelled = client.post(f"/v1/tasks/{long['id']}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        assert wait_status(client, long["id"], {"cancelled"})["status"] == "cancelled"
        time.sleep(max(0.0, down_at + OUTAGE_SECONDS - time.monotonic()))
        during = len(load.accepted)

        database.start()
        up_at = time.monotonic()
        # The API's pooled connections died with the server: the first request
        # that reads the database afterwards must get a new one, not a 500.
        first = client.get("/v1/tasks")
        assert first.status_code == 200, first.text
        # What was accepted while the database was down reaches it once it is back.
        backlog = {*load.accepted[:during], *mine, streamed["id"], followed["id"], long["id"]}
        wait_for(lambda: backlog <= _history(client).keys(), 60, 0.2, "the outage's backlog")
        backlog_recorded = time.monotonic() - up_at
        # Submits go on for a while after the restart, too.
        time.sleep(max(0.0, up_at + 3 - time.monotonic()))
        load.stop()

        assert load.bad == [], load.answers
        assert set(load.answers) <= {"202", "429"}, load.answers
        accepted = [*load.accepted, *mine, streamed["id"], followed["id"]]
        result = wait_all_terminal(stack.redis(), accepted, timeout=120)
        assert result.unfinished == []
        assert result.statuses == {"succeeded": len(accepted)}
        assert result.duplicated == []

        def recorded() -> dict[str, dict[str, Any]] | None:
            history = _history(client)
            done = all(history.get(t, {}).get("status") == "succeeded" for t in accepted)
            return history if done else None

        history = wait_for(recorded, 120, 0.5, "the recorder to catch up")
        # The recorded row carries the task's last sequence number: every event reached it.
        redis = stack.redis()
        pipe = redis.pipeline(transaction=False)
        for task_id in accepted:
            pipe.hget(f"aia:task:{task_id}", "seq")
        live = dict(zip(accepted, pipe.execute(), strict=True))
        assert {t: history[t]["seq"] for t in accepted} == {t: int(live[t]) for t in accepted}
        assert history[long["id"]]["status"] == "cancelled"
        assert redis.xlen(DEAD_LETTERS) == 0
        wait_for(
            lambda: redis.xpending(RECORDER_STREAM, GROUP)["pending"] == 0,
            30,
            what="the recorder to acknowledge everything",
        )
        assert all(process.alive() for process in stack.processes)
        print(
            f"\ndatabase down {OUTAGE_SECONDS} s: {len(load.accepted)} submits accepted "
            f"({during} by the end of the outage), answers {dict(load.answers)}; the "
            f"outage's {len(backlog)} tasks in history {backlog_recorded:.1f} s after the restart"
        )


def test_a_key_never_seen_gets_503_while_the_database_is_down(
    outage_stack: OutageStack,
) -> None:
    stack, database = outage_stack.stack, outage_stack.database
    unseen = stack.create_key("operator")
    database.stop()
    try:
        with stack.client(unseen) as client:
            refused = client.post(
                "/v1/tasks", json={"type": "diagnostics.sleep", "payload": {"seconds": 0}}
            )
            _unavailable(refused)
            _unavailable(client.get("/v1/tasks/00000000-0000-0000-0000-000000000000"))
    finally:
        database.start()
    with stack.client(unseen) as client:
        assert client.get("/v1/tasks").status_code == 200
