"""Private brokers for fault tests: a Redis and a RabbitMQ that a test may stop and start.

Each runs on free ports in the test's own folder, never on the machine's shared
services, so killing one disturbs no other test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support import free_port, wait_for

__all__ = ["PrivateRabbitMQ", "PrivateRedis"]


@dataclass
class PrivateRedis:
    """A ``redis-server`` with its own port and folder; AOF on, as a broker should run."""

    workdir: Path
    binary: str = "redis-server"
    appendonly: bool = True
    port: int = field(default_factory=free_port)
    _popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.workdir)]
        with (self.workdir / "redis.log").open("ab") as log:
            self._popen = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_for(self._ready, 20, 0.05, f"Redis on port {self.port}")

    def shutdown(self) -> None:
        """Stop the server as an operator would (``SHUTDOWN``: the AOF is flushed)."""
        if self._popen is None:
            return
        # SHUTDOWN closes the connection instead of answering.
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(port=self.port, socket_timeout=5).shutdown()
        self._popen.wait(20)
        self._popen = None

    def _ready(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def version(self) -> str:
        info = redis.Redis(port=self.port, decode_responses=True).info("server")
        return str(info["redis_version"])

    def close(self) -> None:
        if self._popen is not None:
            self._popen.kill()
            self._popen.wait()
            self._popen = None


def _rabbitmq_folder() -> Path:
    # Debian's rabbitmq-server drops to the rabbitmq user, who must own the
    # node's folder and reach it (pytest's own temporary folders are private).
    folder = Path(tempfile.mkdtemp(prefix="aia-rabbitmq-"))
    folder.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(folder, "rabbitmq", "rabbitmq")
    return folder


@dataclass
class PrivateRabbitMQ:
    """A RabbitMQ node of its own: own node name, ports, data folder and no plugins."""

    workdir: Path = field(default_factory=_rabbitmq_folder)
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)

    @property
    def node(self) -> str:
        return f"aia-test-{self.port}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @staticmethod
    def available() -> bool:
        return shutil.which("rabbitmq-server") is not None

    def _env(self) -> dict[str, str]:
        plugins = self.workdir / "enabled_plugins"
        if not plugins.exists():
            plugins.write_text("[].\n")
            if os.geteuid() == 0:
                shutil.chown(plugins, "rabbitmq", "rabbitmq")
        config = self.workdir / "rabbitmq.conf"
        if not config.exists():
            # The machine's own configuration may pin the shared port.
            config.write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
            if os.geteuid() == 0:
                shutil.chown(config, "rabbitmq", "rabbitmq")
        return {
            **os.environ,
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_PID_FILE": str(self.workdir / "rabbitmq.pid"),
        }

    def start(self) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], env=self._env(), check=True)
        subprocess.run(
            ["rabbitmqctl", "-n", self.node, "wait", str(self.workdir / "rabbitmq.pid")],
            env=self._env(),
            check=True,
            capture_output=True,
            timeout=120,
        )
        wait_for(self._ready, 60, 0.2, f"RabbitMQ on port {self.port}")

    def _ready(self) -> bool:
        from kombu import Connection

        try:
            with Connection(self.url, connect_timeout=2) as conn:
                conn.connect()
            return True
        except Exception:
            return False

    def stop(self) -> None:
        subprocess.run(
            ["rabbitmqctl", "-n", self.node, "stop", str(self.workdir / "rabbitmq.pid")],
            env=self._env(),
            check=False,
            capture_output=True,
            timeout=120,
        )

    def close(self) -> None:
        self.stop()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._ready():
            time.sleep(0.2)
        shutil.rmtree(self.workdir, ignore_errors=True)
