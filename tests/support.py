"""Real processes for tests: an API (``aia api``) and Celery workers, on free ports."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from aia_workers.backbone.events import StreamLimits
from aia_workers.secretbox import new_key

REDIS_HOST = "127.0.0.1:6379"
TEST_PASSWORD = "correct horse battery staple"
TEST_LIMITS = StreamLimits(
    ttl_seconds=600, events_per_task=100, recorder_maxlen=10_000, idempotency_ttl_seconds=600
)
POSTGRES_ADMIN = "postgresql://root@127.0.0.1:5432/test"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


@dataclass
class Stack:
    """An environment (Redis DB, broker, database) and the processes running on it."""

    env: dict[str, str]
    workdir: Path
    processes: list[Process] = field(default_factory=list)
    api_url: str = ""
    api_key: str = ""
    _client: redis.Redis | None = field(default=None, repr=False)

    @property
    def redis_url(self) -> str:
        return self.env["AIA_REDIS_URL"]

    def redis(self) -> redis.Redis:
        """The stack's one client (closed when the stack stops): a client per call, left for
        the garbage collector, closed its sockets at random later tests' expense."""
        if self._client is None:
            self._client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        return self._client

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Process:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as handle:
            popen = subprocess.Popen(
                argv,
                env={**os.environ, **self.env, **(env or {})},
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.workdir,
            )
        proc = Process(name, popen, log)
        self.processes.append(proc)
        return proc

    def migrate(self) -> None:
        self.aia("db", "upgrade")

    def aia(self, *args: str, stdin: str | None = None) -> str:
        """Run an ``aia`` command in this stack's environment; its standard output."""
        done = subprocess.run(
            [str(_BIN / "aia"), *args],
            env={**os.environ, **self.env},
            check=True,
            capture_output=True,
            text=True,
            input=stdin,
        )
        return done.stdout

    def create_key(self, role: str = "admin", tenant: str = "default") -> str:
        """A new API key (the ``aia keys create`` command's output)."""
        name = f"tests-{role}-{time.time_ns()}"
        return self.aia(
            "keys", "create", "--tenant", tenant, "--role", role, "--name", name
        ).strip()

    def create_user(
        self, role: str = "operator", tenant: str = "default", password: str = TEST_PASSWORD
    ) -> str:
        """A new user (``aia users create``); its username."""
        username = f"{role}-{uuid.uuid4().hex[:8]}"
        self.aia(
            "users",
            "create",
            "--tenant",
            tenant,
            "--username",
            username,
            "--role",
            role,
            "--password-stdin",
            stdin=password + "\n",
        )
        return username

    def client(self, api_key: str | None = None, **kwargs: Any) -> httpx.Client:
        """An HTTP client for the API, authenticated with ``api_key`` (default: the admin's)."""
        key = api_key or self.api_key
        kwargs.setdefault("timeout", 30)
        return httpx.Client(
            base_url=self.api_url, headers={"Authorization": f"Bearer {key}"}, **kwargs
        )

    def start_api(
        self, env: Mapping[str, str] | None = None, *, log_level: str = "warning"
    ) -> tuple[Process, str]:
        """Another API process on a free port; at ``log_level`` info it logs every request."""
        port = free_port()
        proc = self._spawn(
            f"api-{port}",
            [
                str(_BIN / "aia"),
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                log_level,
            ],
            env,
        )
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if not proc.alive():
                raise RuntimeError(f"api exited:\n{proc.output()}")
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 30, what="the API to answer /health")
        if not self.api_url:
            self.api_url = url
        return proc, url

    def start_recorder(self) -> Process:
        return self._spawn("recorder", [str(_BIN / "aia"), "recorder", "--log-level", "warning"])

    def start_worker(
        self,
        name: str,
        queues: str = "default",
        *,
        concurrency: int = 2,
        pool: str = "prefork",
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> Process:
        hostname = f"{name}-{os.getpid()}@testhost"
        proc = self._spawn(
            f"worker-{name}",
            [
                str(_BIN / "celery"),
                "-A",
                "aia_workers",
                "worker",
                "-Q",
                queues,
                "-P",
                pool,
                "-c",
                str(concurrency),
                "-n",
                hostname,
                "--without-mingle",
                "--without-gossip",
                "-l",
                "info",
                *extra_args,
            ],
            env,
        )
        client = self.redis()

        def registered() -> bool:
            if not proc.alive():
                raise RuntimeError(f"worker exited:\n{proc.output()}")
            entry = client.hget("aia:workers", hostname)
            return entry is not None and json.loads(entry).get("pid") == proc.popen.pid

        wait_for(registered, 60, what=f"worker {hostname} to be ready")
        return proc

    def start_exporter(self, port: int) -> Process:
        """``aia exporter`` on ``port``, once it answers a scrape."""
        proc = self._spawn(
            f"exporter-{port}",
            [str(_BIN / "aia"), "exporter", "--port", str(port), "--log-level", "warning"],
        )

        def serving() -> bool:
            if not proc.alive():
                raise RuntimeError(f"exporter exited:\n{proc.output()}")
            try:
                if not httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).is_success:
                    return False
            except httpx.TransportError:
                return False
            # Counting starts once its group on the task event stream exists.
            try:
                groups = self.redis().xinfo_groups("aia:recorder")
            except redis.ResponseError:  # no stream yet
                return False
            return any(group["name"] == "metrics" for group in groups)

        wait_for(serving, 30, what="the exporter to serve")
        return proc

    def start_beat(self, name: str = "beat", env: Mapping[str, str] | None = None) -> Process:
        """An ``aia beat`` process (the database scheduler), once it has started ticking."""
        proc = self._spawn(f"beat-{name}", [str(_BIN / "aia"), "beat", "--log-level", "info"], env)

        def started() -> bool:
            if not proc.alive():
                raise RuntimeError(f"beat exited:\n{proc.output()}")
            return "beat: Starting..." in proc.output()

        wait_for(started, 60, what=f"beat {name} to start")
        return proc

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        if self._client is not None:
            self._client.close()
            self._client = None


def sse_events(
    client: httpx.Client,
    path: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[dict[str, Any]]:
    """Parse an SSE stream into ``{"id", "event", "data"}`` dicts until it ends."""
    with client.stream("GET", path, headers=headers, timeout=timeout) as response:
        response.raise_for_status()
        block: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if "data" in block:
                    yield {
                        "id": block.get("id"),
                        "event": block.get("event", "message"),
                        "data": json.loads(block["data"]),
                    }
                block = {}
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            block[key] = value[1:] if value.startswith(" ") else value


def submit(client: httpx.Client, payload: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    headers = extra.pop("headers", None)
    response = client.post(
        "/v1/tasks",
        json={"type": "diagnostics.sleep", "payload": payload, **extra},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_status(
    client: httpx.Client, task_id: str, statuses: set[str], timeout: float = 30
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        view = client.get(f"/v1/tasks/{task_id}").json()
        return view if view.get("status") in statuses else None

    return wait_for(check, timeout, 0.1, f"task {task_id} to reach {statuses}")  # type: ignore[no-any-return]


def record_submit(
    client: redis.Redis,
    task_id: str,
    *,
    idempotency_key: str | None = None,
    fingerprint: str = "f1",
    broker_message: str = "",
    payload_json: str = '{"seconds":1}',
) -> list[str]:
    """Run the submit Lua directly, as the API does, for tenant ``t1``."""
    from aia_workers.backbone.events import submit_args
    from aia_workers.backbone.scripts import SUBMIT_LUA

    keys, args = submit_args(
        task_id=task_id,
        tenant="t1",
        type_name="diagnostics.sleep",
        queue="default",
        now=time.time(),
        limits=TEST_LIMITS,
        payload_json=payload_json,
        fingerprint=fingerprint,
        idempotency_key=idempotency_key,
        broker_key="default" if broker_message else "",
        broker_message=broker_message,
        priority=None,
        eta=None,
    )
    return client.register_script(SUBMIT_LUA)(keys=keys, args=args)  # type: ignore[no-any-return]


def stack_keys() -> dict[str, str]:
    """Fresh keys every stack needs outside dev mode: the JWT secret, the key that
    encrypts secrets at rest, and the one that signs model files."""
    return {
        "AIA_SECRET_KEY": secrets.token_urlsafe(48),
        "AIA_ENCRYPTION_KEYS": json.dumps([new_key()]),
        "AIA_ARTIFACT_KEY": secrets.token_urlsafe(48),
    }


def private_stack(
    workdir: Path,
    redis_url: str,
    *,
    broker_url: str | None = None,
    database_url: str | None = None,
    role: str = "operator",
    env: Mapping[str, str] | None = None,
) -> Stack:
    """A migrated stack with an API key of ``role`` and a running API; no worker yet."""
    stack = Stack(
        env={
            "AIA_REDIS_URL": redis_url,
            "AIA_BROKER_URL": broker_url or redis_url,
            "AIA_DATABASE_URL": database_url or f"sqlite:///{workdir / 'aia.db'}",
            "AIA_DATA_HOME": str(workdir),
            **stack_keys(),
            **(env or {}),
        },
        workdir=workdir,
    )
    stack.migrate()
    stack.api_key = stack.create_key(role)
    stack.start_api()
    return stack


def history_ids(client: httpx.Client) -> set[str]:
    """Every task id ``GET /v1/tasks`` lists, following its pages."""
    seen: set[str] = set()
    url: str | None = "/v1/tasks?limit=200"
    while url:
        page = client.get(url).json()
        seen.update(item["id"] for item in page["items"])
        url = page["links"].get("next")
    return seen
