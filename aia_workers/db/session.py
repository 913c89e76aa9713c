"""Engines and sessions, made by the process that uses them, never at import."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.errors import TransientError
from aia_workers.settings import Settings

__all__ = ["DATABASE_DOWN", "database_outage_is_transient", "make_engine", "make_sessionmaker"]

# The errors that mean the database cannot be reached right now (stopped,
# restarting, a connection cut, or every pooled connection taken), as opposed
# to a statement it refused: whoever meets one waits and tries again.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)


@contextmanager
def database_outage_is_transient() -> Iterator[None]:
    """Turn a database that cannot be reached into a TransientError, for a task to retry
    with backoff; any other error (a refused statement, a bad state) stays as it is."""
    try:
        yield
    except DATABASE_DOWN as exc:
        raise TransientError(f"the database is unreachable: {exc}") from exc


def make_engine(settings: Settings) -> Engine:
    """An engine for ``settings.database_url`` that fails fast when the database is down."""
    url = settings.database_url
    connect_args: dict[str, Any] = {}
    # A pooled connection that outlived a database restart is found dead when
    # it is checked out and replaced, rather than failing the request it serves.
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connect_args["timeout"] = settings.database_timeout_seconds
    else:
        connect_args["connect_timeout"] = settings.database_timeout_seconds
        kwargs["pool_timeout"] = settings.database_timeout_seconds
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    # WAL lets the API read while the recorder writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
