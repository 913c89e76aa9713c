"""Shared plumbing for the benchmark scripts: private processes, ports, Redis, figures.

Every script starts its own API and worker processes in their own process
groups, on free ports, against a dedicated Redis database that it flushes
first and last; ``Stack`` stops everything it started, even on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import httpx
import redis
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
AIA = str(VENV_BIN / "aia")
CELERY = str(VENV_BIN / "celery")

# BENCH_REDIS=host:port points every script at another Redis server (a private
# one, so that two benchmarks on one machine keep out of each other's databases).
REDIS_HOST, _, _port = os.environ.get("BENCH_REDIS", "127.0.0.1:6379").rpartition(":")
REDIS_PORT = int(_port)
# Redis ports and DB numbers the benchmarks must never take over.
_RESERVED_PORTS = {6379, 5432, 5672}
DEFAULT_REDIS_DB = 15

SLEEP_BODY = {"type": "diagnostics.sleep", "payload": {"seconds": 0, "steps": 1}}


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _RESERVED_PORTS:
            return port


def redis_url(db: int) -> str:
    if not 1 <= db <= 15:
        raise SystemExit("use a dedicated Redis database from 1 to 15 (never 0)")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def raise_nofile(wanted: int | None = None) -> int:
    """Raise this process's open-file limit (children inherit it); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else min(wanted, hard)
    if hard == resource.RLIM_INFINITY and wanted is None:
        target = 1 << 20
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def machine() -> str:
    return f"{os.cpu_count()} CPU cores, Python {sys.version.split()[0]}"


class Proc:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            list(argv),
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group this child leads, then SIGKILL it if it lingers."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Prefork children can outlive a parent that was killed: sweep the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Stack:
    """A private AIA deployment: temp data home, one Redis DB, the processes started."""

    def __init__(self, redis_db: int, *, keep_logs: bool = False) -> None:
        self.redis_db = redis_db
        self.redis_url = redis_url(redis_db)
        self.redis = redis.Redis.from_url(self.redis_url, decode_responses=True)
        self.home = Path(tempfile.mkdtemp(prefix="aia-bench-"))
        self.keep_logs = keep_logs
        self.procs: list[Proc] = []
        self.env = dict(os.environ)
        self.env.update(
            AIA_REDIS_URL=self.redis_url,
            AIA_BROKER_URL=self.redis_url,
            AIA_RESULT_BACKEND=self.redis_url,
            AIA_DATA_HOME=str(self.home),
            AIA_DATABASE_URL=f"sqlite:///{self.home / 'aia.db'}",
            AIA_SECRET_KEY=secrets.token_urlsafe(48),
            AIA_ENCRYPTION_KEYS=json.dumps([Fernet.generate_key().decode()]),
            AIA_ARTIFACT_KEY=secrets.token_urlsafe(48),
            # One key drives thousands of requests a second and queues tens of
            # thousands of tasks: lift the per-principal and per-tenant limits.
            AIA_RATE_LIMIT_PER_MINUTE="1000000000",
            AIA_TENANT_MAX_INFLIGHT="1000000000",
            PYTHONPATH=os.pathsep.join(
                p for p in (str(BENCH), str(REPO), os.environ.get("PYTHONPATH", "")) if p
            ),
            PYTHONUNBUFFERED="1",
        )

    # -- lifecycle --------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.redis.flushdb()
        self.migrate()
        # Every request the benchmarks make carries this admin key, as a real
        # client's would; client subprocesses find it in BENCH_API_KEY.
        self.api_key = subprocess.run(
            [AIA, "keys", "create", "--tenant", "default", "--role", "admin", "--name", "bench"],
            cwd=REPO,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        self.env["BENCH_API_KEY"] = self.api_key
        os.environ["BENCH_API_KEY"] = self.api_key
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        with contextlib.suppress(redis.RedisError):
            self.redis.flushdb()
        self.redis.close()
        if self.keep_logs:
            print(f"logs kept in {self.home}")
        else:
            shutil.rmtree(self.home, ignore_errors=True)

    def migrate(self) -> None:
        subprocess.run(
            [AIA, "db", "upgrade"], cwd=REPO, env=self.env, check=True, capture_output=True
        )

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, argv, env or self.env, self.home)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    # -- AIA processes ----------------------------------------------------------

    def start_recorder(self) -> Proc:
        """``aia recorder``: task events from the stream into the database."""
        return self.spawn("recorder", [AIA, "recorder", "--log-level", "warning"])

    def start_api(self, name: str = "api") -> tuple[Proc, str]:
        """``aia api`` on a free port."""
        port = free_port()
        argv = [
            AIA,
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        proc = self.spawn(name, argv)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", proc)
        return proc, base

    def start_worker(
        self,
        node: str = "bench",
        *,
        concurrency: int = 2,
        app: str = "aia_workers",
        queues: str = "default",
        prefetch: int = 4,
        pool: str = "prefork",
    ) -> Proc:
        argv = [
            CELERY,
            "-A",
            app,
            "worker",
            "-Q",
            queues,
            "-P",
            pool,
            "-c",
            str(concurrency),
            f"--prefetch-multiplier={prefetch}",
            "-n",
            f"{node}@%h",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "warning",
        ]
        return self.spawn(f"worker-{node}", argv)

    def wait_worker_registered(self, proc: Proc, node: str, timeout: float = 30.0) -> None:
        """Until the AIA worker ``node`` shows up in the ``aia:workers`` registry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(k.startswith(f"{node}@") for k in self.redis.hkeys("aia:workers")):
                return
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            time.sleep(0.05)
        raise TimeoutError(f"{proc.name} did not register within {timeout} s:\n{proc.tail()}")


def wait_http(url: str, proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s:\n{proc.tail()}")


def auth_header() -> str:
    """The Authorization header line (with its CRLF) for the stack's API key."""
    return f"Authorization: Bearer {os.environ.get('BENCH_API_KEY', '')}\r\n"


def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {os.environ.get('BENCH_API_KEY', '')}"}


async def submit_many(base: str, count: int, concurrency: int = 32) -> list[str]:
    """Submit ``count`` no-op diagnostics.sleep tasks over HTTP; their ids in order.

    A minimal HTTP/1.1 client on keep-alive sockets: httpx costs more CPU per
    request than the API does, and the cores are shared.
    """
    host, port = base.removeprefix("http://").split(":")
    body = json.dumps(SLEEP_BODY).encode()
    request = (
        f"POST /v1/tasks HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{auth_header()}\r\n"
    ).encode() + body
    ids: list[str] = [""] * count
    next_index = 0

    async def one_by_one() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while next_index < count:
                i = next_index
                next_index += 1
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status, length = _status_and_length(head)
                reply = await reader.readexactly(length)
                if status != 202:
                    raise RuntimeError(f"submit {i}: {status} {reply[:300]!r}")
                ids[i] = json.loads(reply)["id"]
        finally:
            writer.close()

    await asyncio.gather(*(one_by_one() for _ in range(concurrency)))
    return ids


def _status_and_length(head: bytes) -> tuple[int, int]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, length


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)
