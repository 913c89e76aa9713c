"""Fixtures: real Redis, PostgreSQL and RabbitMQ, real API and worker processes."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
import redis
from kombu import Connection

from tests.agent_plugins import E2E_PLUGIN, install_distribution
from tests.support import POSTGRES_ADMIN, RABBITMQ_URL, REDIS_HOST, Stack, stack_keys

# Each stack gets a Redis database of its own so that queues and events never
# mix, also with another test session on the same machine: a database is
# claimed with a key naming the owning process, and a dead owner's claim lapses.
# (Databases 14 and 15 are bench/'s.)
_CLAIM_KEY = "aia-test:claimed-by"
_CANDIDATE_DBS = range(1, 14)


def _claim_redis_db() -> str:
    for db in _CANDIDATE_DBS:
        url = f"redis://{REDIS_HOST}/{db}"
        client = redis.Redis.from_url(url, decode_responses=True)
        owner = client.get(_CLAIM_KEY)
        if owner is not None and psutil.pid_exists(int(owner)):
            continue
        if owner is not None:
            client.delete(_CLAIM_KEY)
        if client.set(_CLAIM_KEY, os.getpid(), nx=True, ex=6 * 3600):
            _flush_keeping_claim(client)
            return url
    raise RuntimeError("every Redis test database is claimed by a running test session")


def _flush_keeping_claim(client: redis.Redis) -> None:
    client.flushdb()
    client.set(_CLAIM_KEY, os.getpid(), ex=6 * 3600)


def _release(url: str) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    if client.get(_CLAIM_KEY) == str(os.getpid()):
        client.flushdb()


@pytest.fixture(scope="session")
def _scratch_redis() -> Iterator[str]:
    url = _claim_redis_db()
    yield url
    _release(url)


@pytest.fixture
def redis_url(_scratch_redis: str) -> str:
    """A Redis database for one test, emptied before it."""
    _flush_keeping_claim(redis.Redis.from_url(_scratch_redis))
    return _scratch_redis


@contextlib.contextmanager
def _fresh_postgres() -> Iterator[str]:
    name = f"aia_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    with _fresh_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each database test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'aia.db'}"
        return
    with _fresh_postgres() as url:
        yield url


def _purge_rabbitmq() -> None:
    from aia_workers.backbone.states import Queue

    with Connection(RABBITMQ_URL, connect_timeout=5) as conn:
        channel = conn.channel()
        for queue in Queue:
            try:
                channel.queue_purge(queue.value)
            except Exception:
                channel = conn.channel()


def _build_stack(
    tmp: Path, broker: str, database_url: str, extra_env: dict[str, str] | None = None
) -> Stack:
    redis_url = _claim_redis_db()
    env = {
        "AIA_REDIS_URL": redis_url,
        "AIA_DATABASE_URL": database_url,
        "AIA_DATA_HOME": str(tmp),
        "AIA_BROKER_URL": RABBITMQ_URL if broker == "rabbitmq" else redis_url,
        **stack_keys(),
        # Every test logs in from 127.0.0.1; test_limits.py checks the real limits.
        "AIA_AUTH_RATE_LIMIT_PER_MINUTE": "100000",
        "AIA_LOGIN_ADDRESS_MAX_FAILURES": "100000",
        "AIA_AUTH_FAILURES_PER_MINUTE": "100000",
        **(extra_env or {}),
    }
    if broker == "rabbitmq":
        _purge_rabbitmq()
    stack = Stack(env=env, workdir=tmp)
    stack.migrate()
    stack.api_key = stack.create_key("admin")
    stack.start_api()
    stack.start_recorder()
    # Named for its stack: two stacks on one broker must not share a node name.
    stack.start_worker(f"default-{tmp.name}")
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
    _release(built.redis_url)


@pytest.fixture(scope="session")
def redis_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A Redis-broker stack of its own, for tests that need not run on both brokers."""
    tmp = tmp_path_factory.mktemp("stack-redis-only")
    built = _build_stack(tmp, "redis", f"sqlite:///{tmp / 'aia.db'}")
    yield built
    built.stop()
    _release(built.redis_url)


@pytest.fixture(scope="session")
def ml_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API, recorder, an ``ml`` and a ``drift`` worker on a PostgreSQL of their own."""
    tmp = tmp_path_factory.mktemp("stack-ml")
    with _fresh_postgres() as database:
        # Schedules as often as every second, for the drift-to-retrain test under beat.
        built = _build_stack(tmp, "redis", database, {"AIA_SCHEDULE_MIN_INTERVAL_SECONDS": "1"})
        # Every prediction logged, so the tests can read the log back; a memory cap
        # low enough for tests/e2e/ml/test_ml_limits.py to pass it cheaply.
        env = {"AIA_PREDICTION_LOG_SAMPLE_RATE": "1", "AIA_ML_TASK_MEMORY_MB": "2048"}
        built.start_worker("ml", "ml", concurrency=1, env=env)
        # Drift checks read the same log and load the same signed models.
        built.start_worker("drift", "drift", concurrency=1)
        yield built
        built.stop()
        _release(built.redis_url)


@pytest.fixture(scope="session")
def agents_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API, recorder and an ``agents`` worker on a PostgreSQL of their own, with a
    third-party plugin (types ``echo``, ``steps``, ``combine``, ``fail_once``, ``inbox``,
    ``relay``, one broken entry) installed in both."""
    tmp = tmp_path_factory.mktemp("stack-agents")
    plugins = tmp / "site"
    install_distribution(
        plugins,
        "aia-e2e-agents",
        {
            "echo": "aia_e2e_agents:EchoAgent",
            "steps": "aia_e2e_agents:StepsAgent",
            "combine": "aia_e2e_agents:CombineAgent",
            "fail_once": "aia_e2e_agents:FailOnceAgent",
            "inbox": "aia_e2e_agents:InboxAgent",
            "relay": "aia_e2e_agents:RelayAgent",
            "e2e-broken": "aia_e2e_agents:NoSuchAgent",
        },
        {"aia_e2e_agents.__init__": E2E_PLUGIN.read_text()},
    )
    path = os.pathsep.join(p for p in (str(plugins), os.environ.get("PYTHONPATH", "")) if p)
    with _fresh_postgres() as database:
        # Schedules as often as every second, for the monitoring agent run under beat.
        env = {"PYTHONPATH": path, "AIA_SCHEDULE_MIN_INTERVAL_SECONDS": "1"}
        built = _build_stack(tmp, "redis", database, env)
        built.start_worker("agents", "agents", concurrency=2)
        yield built
        built.stop()
        _release(built.redis_url)


@pytest.fixture(scope="session")
def agents_pair_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API, recorder and TWO ``agents`` workers (two processes each) sharing the agents'
    slots, with the e2e plugin (``clock`` among its types) and short slot leases."""
    tmp = tmp_path_factory.mktemp("stack-agents-pair")
    plugins = tmp / "site"
    install_distribution(
        plugins,
        "aia-e2e-agents",
        {"clock": "aia_e2e_agents:ClockAgent", "steps": "aia_e2e_agents:StepsAgent"},
        {"aia_e2e_agents.__init__": E2E_PLUGIN.read_text()},
    )
    path = os.pathsep.join(p for p in (str(plugins), os.environ.get("PYTHONPATH", "")) if p)
    env = {
        "PYTHONPATH": path,
        # A killed worker's slots come back within seconds, its messages soon after.
        "AIA_AGENT_SLOT_LEASE_SECONDS": "2",
        "AIA_AGENT_HANDOVER_SECONDS": "20",
        "AIA_VISIBILITY_TIMEOUT_SECONDS": "6",
    }
    with _fresh_postgres() as database:
        built = _build_stack(tmp, "redis", database, env)
        built.start_worker(f"agents-a-{tmp.name}", "agents", concurrency=2)
        built.start_worker(f"agents-b-{tmp.name}", "agents", concurrency=2)
        yield built
        built.stop()
        _release(built.redis_url)


# Fast retries, short timeouts and the tests' receiver on 127.0.0.1 let through.
WEBHOOK_ENV = {
    "AIA_WEBHOOK_RETRY_SCHEDULE": "[0.3, 0.6, 0.9]",
    "AIA_WEBHOOK_TIMEOUT_SECONDS": "2",
    # A message lost with its worker is sent again once its lease (this + 10 s) ends.
    "AIA_WEBHOOK_DEADLINE_SECONDS": "4",
    "AIA_WEBHOOK_RELAY_INTERVAL_SECONDS": "0.2",
    "AIA_WEBHOOK_DISABLE_AFTER_SECONDS": "4",
    "AIA_WEBHOOK_SECRET_GRACE_SECONDS": "3600",
    "AIA_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.1"]',
}


@pytest.fixture(scope="session")
def webhook_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API, recorder, a default and a webhooks worker on a PostgreSQL of their own."""
    tmp = tmp_path_factory.mktemp("stack-webhooks")
    with _fresh_postgres() as database:
        built = _build_stack(tmp, "redis", database, WEBHOOK_ENV)
        built.start_worker("webhooks", "webhooks", pool="threads", concurrency=8)
        yield built
        built.stop()
        _release(built.redis_url)


@pytest.fixture(scope="session")
def rabbitmq_webhook_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The webhook stack with RabbitMQ as the broker (SQLite for the database)."""
    tmp = tmp_path_factory.mktemp("stack-webhooks-rabbitmq")
    built = _build_stack(tmp, "rabbitmq", f"sqlite:///{tmp / 'aia.db'}", WEBHOOK_ENV)
    built.start_worker("webhooks-rabbitmq", "webhooks", pool="threads", concurrency=8)
    yield built
    built.stop()
    _release(built.redis_url)


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


@pytest.fixture
def redis_api(redis_stack: Stack) -> Iterator[httpx.Client]:
    with redis_stack.client() as client:
        yield client
