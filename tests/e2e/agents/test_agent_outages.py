"""Agents, workflows and mailboxes ride through real Redis and PostgreSQL restarts.

Each outage is played on a private server (tests/brokers.py, tests/pgserver.py)
that is really stopped and started again, under a stack of real processes: an
API, the recorder and an ``agents`` worker with the e2e plugin's types. While a
dependency is down the API answers what it can, or 503 with Retry-After, never
another 5xx; once it is back everything accepted finishes by itself.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.agent_plugins import E2E_PLUGIN, install_distribution
from tests.brokers import PrivateRedis
from tests.conftest import _claim_redis_db, _fresh_postgres, _release
from tests.pgserver import running_postgres
from tests.support import Stack, private_stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

# Long enough for the hub, Celery and the pools to notice; short for CI.
OUTAGE_SECONDS = 6
_TERMINAL = {"succeeded", "failed", "cancelled"}
_ENV = {
    # A step or run stopped by the broker's connection loss comes back soon after.
    "AIA_VISIBILITY_TIMEOUT_SECONDS": "6",
    # A slot whose run was stopped without giving it back lapses within seconds.
    "AIA_AGENT_SLOT_LEASE_SECONDS": "3",
    "AIA_AGENT_HANDOVER_SECONDS": "20",
    # A quiet mailbox stream looks at the database this often.
    "AIA_SSE_HEARTBEAT_SECONDS": "1",
    "AIA_AUTH_RATE_LIMIT_PER_MINUTE": "100000",
}


@dataclass
class Outage:
    """A stack and the private server under it that the test stops and starts."""

    stack: Stack
    stop: Callable[[], None]
    start: Callable[[], None]


def _plugin_path(tmp: Path) -> str:
    site = tmp / "site"
    install_distribution(
        site,
        "aia-e2e-agents",
        {
            "steps": "aia_e2e_agents:StepsAgent",
            "inbox": "aia_e2e_agents:InboxAgent",
        },
        {"aia_e2e_agents.__init__": E2E_PLUGIN.read_text()},
    )
    return os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)


def _agents_stack(tmp: Path, redis_url: str, database_url: str) -> Stack:
    env = {**_ENV, "PYTHONPATH": _plugin_path(tmp)}
    stack = private_stack(tmp, redis_url, database_url=database_url, role="admin", env=env)
    try:
        stack.start_recorder()
        stack.start_worker(f"agents-{tmp.name}", "agents", concurrency=3)
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="module")
def redis_outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    """The stack on a private Redis (broker, events, slots; AOF on) and a PostgreSQL
    database of its own on the shared server."""
    tmp = tmp_path_factory.mktemp("agents-redis-outage")
    server = PrivateRedis(tmp / "redis")
    server.start()
    try:
        with _fresh_postgres() as database:
            stack = _agents_stack(tmp, server.url, database)
            try:
                yield Outage(stack, server.shutdown, server.start)
            finally:
                stack.stop()
    finally:
        server.close()


@pytest.fixture(scope="module")
def database_outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    """The stack on a private PostgreSQL cluster and a claimed database of the shared Redis."""
    tmp = tmp_path_factory.mktemp("agents-database-outage")
    with running_postgres() as database:
        redis_url = _claim_redis_db()
        try:
            stack = _agents_stack(tmp, redis_url, database.createdb("aia"))
            try:
                yield Outage(stack, database.stop, database.start)
            finally:
                stack.stop()
        finally:
            _release(redis_url)


@dataclass
class Answers:
    """Every answer the API gave while a dependency was away; ``bad`` are the ones a fault
    must never give (a 5xx other than 503 + Retry-After, a dropped connection)."""

    seen: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)

    def call(
        self, client: httpx.Client, method: str, path: str, **kw: Any
    ) -> httpx.Response | None:
        try:
            response = client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self.bad.append(f"{method} {path}: {type(exc).__name__}")
            return None
        code = response.status_code
        self.seen[f"{method} {code}"] += 1
        if code == 503:
            if not response.headers.get("retry-after"):
                self.bad.append(f"{method} {path}: 503 without Retry-After")
            if not response.headers["content-type"].startswith("application/problem+json"):
                self.bad.append(f"{method} {path}: 503 not a problem: {response.text[:200]}")
        elif code >= 500:
            self.bad.append(f"{method} {path}: {code} {response.text[:300]}")
        return response


def _agent(api: httpx.Client, type_name: str, **fields: Any) -> str:
    body = {"name": f"{type_name}-{uuid.uuid4().hex[:8]}", "type": type_name, **fields}
    response = api.post("/v1/agents", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def _chain(api: httpx.Client, steps: int) -> str:
    """A workflow of three ``steps`` agents one after the other; its id."""
    ids = ["one", "two", "three"]
    graph = [
        {
            "id": step,
            "agent_id": _agent(api, "steps", config={"step_seconds": 0.2}),
            "input": {"steps": steps},
            "after": ids[:i][-1:],
        }
        for i, step in enumerate(ids)
    ]
    response = api.post(
        "/v1/workflows", json={"name": f"wf-{uuid.uuid4().hex[:8]}", "steps": graph}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def _start_workflow(api: httpx.Client, workflow_id: str) -> dict[str, Any]:
    response = api.post(f"/v1/workflows/{workflow_id}/runs")
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def _run(api: httpx.Client, agent_id: str, inputs: dict[str, Any]) -> str:
    response = api.post(f"/v1/agents/{agent_id}/runs", json={"input": inputs})
    assert response.status_code == 202, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def _task(api: httpx.Client, task_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _task_ended(api: httpx.Client, task_id: str, timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        view = _task(api, task_id)
        return view if view["status"] in _TERMINAL else None

    return wait_for(check, timeout, 0.2, f"task {task_id} to end")  # type: ignore[no-any-return]


def _workflow_ended(api: httpx.Client, run_id: str, timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        response = api.get(f"/v1/workflows/runs/{run_id}")
        if response.status_code == 503:
            return None
        assert response.status_code == 200, response.text
        view = response.json()
        busy = [s for s in view["steps"] if s["status"] in {"queued", "running"}]
        return view if view["status"] in _TERMINAL and not busy else None

    return wait_for(check, timeout, 0.3, f"workflow run {run_id} to end")  # type: ignore[no-any-return]


def _step_status(api: httpx.Client, run_id: str, step_id: str) -> str:
    view = api.get(f"/v1/workflows/runs/{run_id}").json()
    return next(str(s["status"]) for s in view["steps"] if s["id"] == step_id)


def _outage(probe: Callable[[], None]) -> None:
    """Call ``probe`` again and again for OUTAGE_SECONDS."""
    until = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < until:
        probe()
        time.sleep(0.3)


def test_a_workflow_and_a_run_ride_through_a_redis_restart(redis_outage: Outage) -> None:
    stack = redis_outage.stack
    answers = Answers()
    with stack.client(timeout=20) as api:
        workflow = _chain(api, steps=8)
        solo = _agent(api, "steps", config={"step_seconds": 0.2}, max_concurrency=1)
        run = _start_workflow(api, workflow)
        wait_for(lambda: _step_status(api, run["id"], "one") == "running", 30, 0.1, "step one")
        held = _run(api, solo, {"steps": 20})
        wait_for(lambda: _task(api, held)["status"] == "running", 30, 0.1, "the solo run")

        redis_outage.stop()

        def probe() -> None:
            answers.call(api, "GET", f"/v1/workflows/runs/{run['id']}")
            answers.call(api, "GET", f"/v1/tasks/{held}")
            answers.call(api, "POST", f"/v1/agents/{solo}/runs", json={"input": {"steps": 1}})
            answers.call(api, "POST", f"/v1/workflows/{workflow}/runs")

        try:
            _outage(probe)
        finally:
            redis_outage.start()

        # What the design promises: a step stopped by the outage runs again and the run
        # succeeds; or it failed, naming the step, and a resume runs it again.
        ended = _workflow_ended(api, run["id"], 90)
        first_outcome = ended["status"], ended["error"]
        if ended["status"] != "succeeded":
            assert ended["status"] == "failed", ended
            assert ended["error"]["step"] in {"one", "two", "three"}, ended
            resumed = api.post(f"/v1/workflows/runs/{run['id']}/resume")
            assert resumed.status_code == 202, resumed.text
            ended = _workflow_ended(api, run["id"], 90)
        assert ended["status"] == "succeeded", ended
        assert [s["status"] for s in ended["steps"]] == ["succeeded"] * 3
        for step in ended["steps"]:
            assert api.get(step["links"]["self"]).json()["output"] == {"steps": 8}

        # The solo run's slot came back: the agent, at most one run at a time, runs again.
        held_outcome = _task_ended(api, held, 90)["status"]
        later = _task_ended(api, _run(api, solo, {"steps": 1}), 60)
        assert later["status"] == "succeeded", later
        # Runs posted during the outage were refused, or run.
        for response_id in _accepted_during(api, solo, held, later["id"]):
            _task_ended(api, response_id, 60)

    assert answers.bad == [], answers
    assert answers.seen["GET 503"] > 0, answers
    assert all(p.alive() for p in stack.processes), [p.name for p in stack.processes]
    print(
        f"\nRedis down {OUTAGE_SECONDS} s: the workflow run first {first_outcome}, the run "
        f"that held the slot {held_outcome}; answers {dict(answers.seen)}"
    )


def _accepted_during(api: httpx.Client, agent_id: str, *known: str) -> list[str]:
    runs = api.get(f"/v1/agents/{agent_id}/runs?limit=100").json()["items"]
    return [r["id"] for r in runs if r["id"] not in known]


@dataclass
class MailboxFollower:
    """A client following a mailbox over SSE, as a browser's EventSource would: when the
    stream is dropped it reconnects with Last-Event-ID, waiting on 503s."""

    stack: Stack
    agent_id: str
    received: list[dict[str, Any]] = field(default_factory=list)
    connects: int = 0
    refusals: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> MailboxFollower:
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _follow(self) -> None:
        path = f"/v1/agents/{self.agent_id}/messages/events"
        with self.stack.client(timeout=httpx.Timeout(10, read=5)) as client:
            while not self._stop.is_set():
                headers = {}
                if self.received:
                    headers["Last-Event-ID"] = str(self.received[-1]["position"])
                try:
                    self._read(client, path, headers)
                except httpx.HTTPError as exc:
                    self.errors.append(type(exc).__name__)
                self._stop.wait(0.3)

    def _read(self, client: httpx.Client, path: str, headers: dict[str, str]) -> None:
        with client.stream("GET", path, headers=headers) as response:
            if response.status_code != 200:
                response.read()
                self.refusals[response.status_code] += 1
                return
            self.connects += 1
            block: dict[str, str] = {}
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line:
                    key, _, value = line.partition(":")
                    block[key] = value[1:] if value.startswith(" ") else value
                    continue
                if block.get("event") == "error":
                    self.errors.append(block.get("data", ""))
                    return
                if block.get("event") == "message":
                    self.received.append(orjson.loads(block["data"]))
                block = {}


def test_a_mailbox_stream_resumes_after_a_redis_restart_and_nothing_is_lost(
    redis_outage: Outage,
) -> None:
    stack = redis_outage.stack
    answers = Answers()
    with stack.client() as api, stack.client(stack.create_key("operator")) as other:
        inbox = _agent(api, "inbox")
        senders = [api, other]
        posted: list[dict[str, Any]] = []

        def post(n: int) -> None:
            response = answers.call(
                senders[n % 2], "POST", f"/v1/agents/{inbox}/messages", json={"body": {"n": n}}
            )
            if response is not None and response.status_code == 201:
                posted.append(response.json())
            elif response is not None:
                assert response.status_code == 503, response.text

        follower = MailboxFollower(stack, inbox).start()
        try:
            for n in range(4):
                post(n)
            wait_for(lambda: len(follower.received) == 4, 30, 0.1, "the first messages")

            redis_outage.stop()
            try:
                counter = iter(range(4, 100))
                _outage(lambda: post(next(counter)))
            finally:
                redis_outage.start()
            during = len(posted) - 4
            for n in range(100, 104):
                post(n)

            def delivered() -> bool:
                return {m["id"] for m in follower.received} >= {m["id"] for m in posted}

            wait_for(delivered, 30, 0.2, "every stored message to reach the stream")
        finally:
            follower.stop()

        assert answers.bad == [], answers
        # Each message once, in mailbox order, across the reconnections.
        positions = [m["position"] for m in follower.received]
        assert positions == sorted(set(positions)), positions
        assert [m["id"] for m in follower.received] == [m["id"] for m in posted]
        for sender in {m["sender"] for m in posted}:
            seqs = [m["seq"] for m in follower.received if m["sender"] == sender]
            assert seqs == list(range(1, len(seqs) + 1)), (sender, seqs)

        # At least once: a run that fails acknowledges nothing; the next reads it all again.
        failed = _task_ended(api, _run(api, inbox, {"ack": False, "fail": True}))
        assert failed["status"] == "failed", failed
        read = _task_ended(api, _run(api, inbox, {}))
        assert read["status"] == "succeeded", read
        got = read["result"]["read"]
        assert [m["id"] for m in got] == [m["id"] for m in posted]
        assert {m["deliveries"] for m in got} == {2}
        pending = api.get(f"/v1/agents/{inbox}/messages", params={"pending": "true"})
        assert pending.json()["items"] == []
    print(
        f"\nmailbox: {len(posted)} stored ({during} while Redis was down), stream connected "
        f"{follower.connects} times, "
        f"refused {dict(follower.refusals)}, dropped {len(follower.errors)} times"
    )


# A run that retries (its database unreachable) sends its next copy before its slot is given
# back (task_postrun, aia_workers/agents/tasking.py); a copy admitted in between is parked and
# then taken out of its agent's line by that release, and stays queued.
def test_runs_and_a_workflow_ride_through_a_database_restart(database_outage: Outage) -> None:
    stack = database_outage.stack
    answers = Answers()
    with stack.client(timeout=20) as api:
        workflow = _chain(api, steps=3)
        solo = _agent(api, "steps", config={"step_seconds": 0.2}, max_concurrency=1)
        wide = _agent(api, "steps", config={"step_seconds": 0.2}, max_concurrency=50)
        # One runs, the others wait in the agent's line through the outage.
        lined = [_run(api, solo, {"steps": 10}) for _ in range(3)]
        before = [_run(api, wide, {"steps": 10}) for _ in range(2)]
        run = _start_workflow(api, workflow)
        wait_for(lambda: _task(api, lined[0])["status"] == "running", 30, 0.1, "the first run")
        accepted: list[str] = []

        database_outage.stop()

        def probe() -> None:
            answers.call(api, "GET", f"/v1/workflows/runs/{run['id']}")
            answers.call(api, "GET", f"/v1/agents/{wide}/runs")
            answers.call(api, "POST", f"/v1/agents/{wide}/runs", json={"input": {"steps": 1}})
            answers.call(api, "POST", f"/v1/workflows/{workflow}/runs")
            status = answers.call(api, "GET", f"/v1/tasks/{lined[-1]}")
            assert status is not None
            assert status.status_code == 200, status.text
            # Submitting needs only Redis: such a run waits for the database to start.
            body = {"type": "agents.run", "payload": {"agent_id": wide, "input": {"steps": 1}}}
            submitted = answers.call(api, "POST", "/v1/tasks", json=body)
            if submitted is not None and submitted.status_code == 202:
                accepted.append(submitted.json()["id"])

        try:
            _outage(probe)
        finally:
            database_outage.start()

        for task_id in [*before, *accepted]:
            ended = _task_ended(api, task_id, 90)
            assert ended["status"] == "succeeded", ended
        ended = _workflow_ended(api, run["id"], 90)
        assert ended["status"] == "succeeded", ended
        assert [s["status"] for s in ended["steps"]] == ["succeeded"] * 3
        # Every run is the agent's, the ones submitted during the outage too.
        listed = {r["id"] for r in api.get(f"/v1/agents/{wide}/runs?limit=100").json()["items"]}
        assert listed >= {*before, *accepted}
        # Its slot is not leaked: the capped agent runs again.
        later = _task_ended(api, _run(api, solo, {"steps": 1}), 60)
        assert later["status"] == "succeeded", later

    assert answers.bad == [], answers
    assert answers.seen["GET 503"] > 0, answers
    assert all(p.alive() for p in stack.processes), [p.name for p in stack.processes]
    print(f"\ndatabase down {OUTAGE_SECONDS} s: answers {dict(answers.seen)}")
    with stack.client() as api:
        # The capped agent's line, retries included, drains by itself.
        for task_id in lined:
            ended = _task_ended(api, task_id, 60)
            assert ended["status"] == "succeeded", ended
