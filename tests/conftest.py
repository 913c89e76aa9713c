"""Fixtures: real Redis, PostgreSQL and RabbitMQ, real API and worker processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from kombu import Connection

from tests.support import POSTGRES_ADMIN, RABBITMQ_URL, REDIS_HOST, Stack

# Each stack gets a Redis database of its own so their queues and events never
# mix; single tests share database 1, flushed before each. (14 and 15 are bench/'s.)
_REDIS_DBS = iter(range(2, 14))
_SCRATCH_DB = 1


def _redis_db_url() -> str:
    url = f"redis://{REDIS_HOST}/{next(_REDIS_DBS)}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"aia_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each database test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'aia.db'}"
        return
    name = f"aia_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    url = f"redis://{REDIS_HOST}/{_SCRATCH_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


def _purge_rabbitmq() -> None:
    from aia_workers.states import Queue

    with Connection(RABBITMQ_URL, connect_timeout=5) as conn:
        channel = conn.channel()
        for queue in Queue:
            try:
                channel.queue_purge(queue.value)
            except Exception:
                channel = conn.channel()


def _build_stack(tmp: Path, broker: str, database_url: str) -> Stack:
    redis_url = _redis_db_url()
    env = {
        "AIA_REDIS_URL": redis_url,
        "AIA_DATABASE_URL": database_url,
        "AIA_DATA_HOME": str(tmp),
        "AIA_BROKER_URL": RABBITMQ_URL if broker == "rabbitmq" else redis_url,
    }
    if broker == "rabbitmq":
        _purge_rabbitmq()
    stack = Stack(env=env, workdir=tmp)
    stack.migrate()
    stack.start_api()
    stack.start_worker(f"default-{broker}")
    return stack


@pytest.fixture(scope="session", params=["redis", "rabbitmq"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[Stack]:
    """API + a default-queue worker; Redis or RabbitMQ as broker (Redis for events)."""
    broker = request.param
    tmp = tmp_path_factory.mktemp(f"stack-{broker}")
    # The Redis-broker stack records to PostgreSQL, the RabbitMQ one to SQLite.
    database = postgres_url if broker == "redis" else f"sqlite:///{tmp / 'aia.db'}"
    built = _build_stack(tmp, broker, database)
    yield built
    built.stop()


@pytest.fixture(scope="session")
def redis_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A Redis-broker stack of its own, for tests that need not run on both brokers."""
    tmp = tmp_path_factory.mktemp("stack-redis-only")
    built = _build_stack(tmp, "redis", f"sqlite:///{tmp / 'aia.db'}")
    yield built
    built.stop()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        yield client


@pytest.fixture
def redis_api(redis_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=redis_stack.api_url, timeout=30) as client:
        yield client
