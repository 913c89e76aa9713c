"""A private PostgreSQL cluster for tests that stop and restart the database.

The shared server on 5432 must stay up for every other test, so an outage is
played on a cluster of our own: made with the machine's ``initdb`` in a
temporary folder, on a free port of 127.0.0.1, with trust authentication.
PostgreSQL refuses to run as root, so when the tests do, the cluster belongs
to the ``postgres`` account and its commands run through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import free_port

__all__ = ["PostgresServer", "postgres_binaries", "running_postgres"]

_OWNER = "postgres"
_START_SECONDS = 30


def postgres_binaries() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin``; skips the calling test when there is none."""
    found = sorted(
        (path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not found:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return found[-1]


class PostgresServer:
    """One cluster in ``directory``; ``start``, ``stop`` and ``start`` again on the same port."""

    def __init__(self, directory: Path, binaries: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self._bin = binaries
        self._data = directory / "data"
        self._sockets = directory / "sockets"
        self._log = directory / "postgres.log"
        self._sockets.mkdir()
        # initdb and pg_ctl refuse root: hand them to the postgres account.
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(_OWNER)
            except KeyError:
                pytest.skip(f"tests run as root and there is no {_OWNER!r} account to run as")
            for path in (directory, self._sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self._as_owner = ["runuser", "-u", _OWNER, "--"]

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL for ``database`` on this server."""
        return f"postgresql+psycopg://{_OWNER}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            [*self._as_owner, *argv],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=_START_SECONDS * 2,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited with {done.returncode}:\n"
                f"{done.stdout}{done.stderr}\n{self.log()}"
            )

    def init(self) -> None:
        self._run(
            str(self._bin / "initdb"),
            "--pgdata",
            str(self._data),
            "--username",
            _OWNER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._sockets} "
            # Nothing here needs to survive a crash of the machine.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self._bin / "pg_ctl"),
            "start",
            "--pgdata",
            str(self._data),
            "--log",
            str(self._log),
            "--wait",
            "--timeout",
            str(_START_SECONDS),
            "-o",
            options,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` cuts every session off, as an outage would."""
        self._run(
            str(self._bin / "pg_ctl"),
            "stop",
            "--pgdata",
            str(self._data),
            "--mode",
            mode,
            "--wait",
            "--timeout",
            str(_START_SECONDS),
        )

    def running(self) -> bool:
        return (self._data / "postmaster.pid").exists()

    def createdb(self, name: str) -> str:
        """Create the database ``name``; its SQLAlchemy URL."""
        admin = f"postgresql://{_OWNER}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh cluster, started; stopped and removed on exit.

    Its folder is made under the system's temporary directory rather than a
    pytest ``tmp_path``, whose parents only root may enter.
    """
    binaries = postgres_binaries()
    directory = Path(tempfile.mkdtemp(prefix="aia-pg-"))
    try:
        server = PostgresServer(directory, binaries)
        server.init()
        server.start()
        try:
            yield server
        finally:
            if server.running():
                server.stop("immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
