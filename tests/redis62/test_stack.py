"""A whole stack on Redis 6.2, as `aia dev` runs it where no redis-server is installed.

Redis is its broker, event store and pub/sub; SQLite holds the task history.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.redis_servers import server_version
from tests.support import (
    TEST_PASSWORD,
    Stack,
    sse_events,
    stack_keys,
    submit,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.e2e

MAX_FAILURES = 3


@pytest.fixture(scope="module")
def stack(redis62_for_stack: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp("stack-redis62")
    built = Stack(
        env={
            "AIA_REDIS_URL": redis62_for_stack,
            "AIA_BROKER_URL": redis62_for_stack,
            "AIA_DATABASE_URL": f"sqlite:///{tmp / 'aia.db'}",
            "AIA_DATA_HOME": str(tmp),
            **stack_keys(),
            "AIA_LOGIN_MAX_FAILURES": str(MAX_FAILURES),
            # Every test logs in from 127.0.0.1: only accounts should lock here.
            "AIA_AUTH_RATE_LIMIT_PER_MINUTE": "100000",
            "AIA_LOGIN_ADDRESS_MAX_FAILURES": "100000",
        },
        workdir=tmp,
    )
    try:
        built.migrate()
        built.api_key = built.create_key("admin")
        built.start_api()
        built.start_recorder()
        built.start_worker("default-redis62")
        yield built
    finally:
        built.stop()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def _login(url: str, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/auth/token", json={"username": username, "password": password})


def test_the_stack_runs_on_redis_6_2(stack: Stack) -> None:
    assert server_version(stack.redis_url).startswith("6.2.")
    assert stack.env["AIA_BROKER_URL"] == stack.redis_url


def test_a_task_succeeds_streams_its_events_and_is_recorded(api: httpx.Client) -> None:
    task = submit(api, {"seconds": 0.3, "steps": 3})
    events = list(sse_events(api, task["links"]["events"]))
    assert [e["event"] for e in events] == [
        "queued",
        "started",
        "progress",
        "progress",
        "progress",
        "succeeded",
    ]
    assert [int(e["id"]) for e in events] == list(range(1, 7))
    assert events[-1]["data"]["data"]["result"]["steps"] == 3

    def recorded() -> bool:
        listed = api.get("/v1/tasks", params={"limit": 200}).json()["items"]
        return any(t["id"] == task["id"] and t["status"] == "succeeded" for t in listed)

    wait_for(recorded, 15, what="the recorder to write the task to the database")


def test_a_running_task_can_be_cancelled(api: httpx.Client) -> None:
    # Revoking goes out on the broker's broadcast exchange: kombu's own Redis commands.
    task = submit(api, {"seconds": 30, "steps": 30})
    wait_status(api, task["id"], {"running"})
    assert api.post(f"/v1/tasks/{task['id']}/cancel").status_code == 202
    events = list(sse_events(api, task["links"]["events"]))
    assert events[-1]["event"] == "cancelled"


def test_failed_logins_answer_401_then_lock_the_account(stack: Stack) -> None:
    username = stack.create_user()
    answers = [_login(stack.api_url, username, "wrong password!!") for _ in range(MAX_FAILURES)]
    assert [a.status_code for a in answers] == [401] * MAX_FAILURES
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    # Locked: even the right password is refused until the lock lapses.
    locked = _login(stack.api_url, username, TEST_PASSWORD)
    assert locked.status_code == 429
    assert locked.json()["type"] == "urn:aia:problem:locked-out"
    assert int(locked.headers["retry-after"]) > 0
    # The lock is the account's, not the address's.
    assert _login(stack.api_url, stack.create_user(), TEST_PASSWORD).status_code == 200


def test_the_rate_limit_holds(stack: Stack) -> None:
    proc, url = stack.start_api(env={"AIA_RATE_LIMIT_PER_MINUTE": "5"})
    try:
        headers = {"Authorization": f"Bearer {stack.create_key('viewer')}"}
        answers = [httpx.get(f"{url}/v1/tasks", headers=headers) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert answers[0].headers["ratelimit-remaining"] == "4"
    finally:
        proc.stop()
