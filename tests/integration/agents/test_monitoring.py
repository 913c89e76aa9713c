"""The monitoring agent on real Redis and SQLite or PostgreSQL: signals, states, alerts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from kombu import Connection
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.agents.alerts import rule_states
from aia_workers.agents.builtin.monitoring import MonitoringAgent, MonitoringConfig, MonitoringInput
from aia_workers.agents.contracts import AgentEnvironment
from aia_workers.backbone.announcements import to_webhooks
from aia_workers.backbone.backlog import amqp_depths
from aia_workers.backbone.broker import redis_queue_key
from aia_workers.backbone.keys import pending_key, task_key
from aia_workers.db.migrate import upgrade
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.db.tasks import TaskRecord
from aia_workers.db.webhooks import WebhookEndpoint, WebhookMessage
from aia_workers.drift.latest import LatestVerdict, record_latest
from aia_workers.ml.artifacts import LocalArtifactStore
from aia_workers.settings import Settings
from tests.support import RABBITMQ_URL

pytestmark = pytest.mark.integration

TENANT = "t1"


@dataclass
class _Run:
    """A run's context as the agents.run task gives it: here without a broker in between."""

    tenant: str
    agent_id: str
    env: AgentEnvironment
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    steps: list[tuple[int, int, str | None]] = field(default_factory=list)

    def progress(self, current: int, total: int, message: str | None = None) -> None:
        self.steps.append((current, total, message))

    def checkpoint(self) -> None:
        return None


@pytest.fixture
def env(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[AgentEnvironment]:
    settings = Settings(database_url=database_url, redis_url=redis_url, data_home=tmp_path)
    upgrade(settings)
    engine = make_engine(settings)
    client = redis.Redis.from_url(redis_url)
    yield AgentEnvironment(
        settings=settings,
        sessions=make_sessionmaker(engine),
        artifacts=LocalArtifactStore(settings.artifact_root),
        redis=client,
        events=to_webhooks,
    )
    client.close()
    engine.dispose()


def _endpoint(sessions: sessionmaker[Session], tenant: str = TENANT) -> str:
    now = datetime.now(UTC)
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()),
        tenant_id=tenant,
        url="https://example.com/alerts",
        events=["alert.fired"],
        enabled=True,
        secret="whsec_" + "A" * 44,
        created_at=now,
        updated_at=now,
    )
    with sessions.begin() as session:
        session.add(endpoint)
    return endpoint.id


def _plant(
    sessions: sessionmaker[Session],
    status: str,
    count: int,
    *,
    tenant: str = TENANT,
    type_name: str = "ml.train",
    ago: timedelta = timedelta(minutes=1),
) -> None:
    finished = datetime.now(UTC) - ago
    with sessions.begin() as session:
        for _ in range(count):
            session.add(
                TaskRecord(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant,
                    type=type_name,
                    queue="ml",
                    status=status,
                    seq=3,
                    attempts=1,
                    created_at=finished - timedelta(seconds=5),
                    started_at=finished - timedelta(seconds=4),
                    finished_at=finished,
                    updated_at=finished,
                )
            )


def _alerts(sessions: sessionmaker[Session]) -> list[WebhookMessage]:
    with sessions() as session:
        stmt = select(WebhookMessage).where(WebhookMessage.event_type == "alert.fired")
        return list(session.scalars(stmt.order_by(WebhookMessage.created_at)))


def _agent(*rules: dict) -> MonitoringAgent:
    return MonitoringAgent(MonitoringConfig.model_validate({"rules": list(rules)}))


FAILING_TRAINING = {
    "name": "training failing",
    "signal": "failure_rate",
    "task_type": "ml.train",
    "window_seconds": 600,
    "op": "gt",
    "threshold": 0.5,
    "min_samples": 10,
}


def test_a_spike_of_failures_fires_once_and_resolves_once(env: AgentEnvironment) -> None:
    _endpoint(env.sessions)
    agent_id = str(uuid.uuid4())
    agent = _agent(FAILING_TRAINING)
    _plant(env.sessions, "succeeded", 3)
    _plant(env.sessions, "failed", 12)
    # Not this tenant's, not this type, not in the window, or not an outcome: none counts.
    _plant(env.sessions, "failed", 40, tenant="t2")
    _plant(env.sessions, "failed", 40, type_name="ml.predict")
    _plant(env.sessions, "succeeded", 40, ago=timedelta(hours=2))
    _plant(env.sessions, "cancelled", 40)

    run = _Run(TENANT, agent_id, env)
    first = agent.run(MonitoringInput(), run)
    [rule] = first["rules"]
    assert rule["state"] == "firing"
    assert rule["previous_state"] == "ok"
    assert rule["value"] == pytest.approx(12 / 15)
    assert rule["samples"] == 15
    assert rule["detail"]["failed"] == 12
    assert first["firing"] == ["training failing"]
    assert first["alerts"] == [{"rule": "training failing", "state": "firing"}]
    assert run.steps[-1][0] == run.steps[-1][1]

    [message] = _alerts(env.sessions)
    payload = message.payload
    assert message.tenant_id == TENANT
    assert payload["state"] == "firing"
    assert payload["rule"] == "training failing"
    assert payload["signal"] == "failure_rate"
    assert payload["value"] == pytest.approx(0.8)
    assert (payload["op"], payload["threshold"]) == ("gt", 0.5)
    assert payload["agent_id"] == agent_id
    assert payload["run_id"] == run.run_id
    assert payload["task_type"] == "ml.train"
    assert payload["alert"].startswith("Firing: training failing: failure_rate of ml.train")

    # The spike is still there a minute later: still firing, nothing more sent.
    second = agent.run(MonitoringInput(), _Run(TENANT, agent_id, env))
    assert second["rules"][0]["state"] == "firing"
    assert second["rules"][0]["previous_state"] == "firing"
    assert second["alerts"] == []
    assert len(_alerts(env.sessions)) == 1

    # Successes bring the rate down to 12/55: resolved, once.
    _plant(env.sessions, "succeeded", 40)
    third = agent.run(MonitoringInput(), _Run(TENANT, agent_id, env))
    assert third["rules"][0]["state"] == "ok"
    assert third["alerts"] == [{"rule": "training failing", "state": "resolved"}]
    assert third["firing"] == []
    fired, resolved = _alerts(env.sessions)
    assert fired.payload["state"] == "firing"
    assert resolved.payload["state"] == "resolved"
    assert resolved.payload["value"] == pytest.approx(12 / 55)
    assert agent.run(MonitoringInput(), _Run(TENANT, agent_id, env))["alerts"] == []
    assert len(_alerts(env.sessions)) == 2
    with env.sessions() as session:
        state = rule_states(session, TENANT, agent_id)["training failing"]
    assert (state.state, state.transitions) == ("ok", 2)


def test_successes_alone_stay_quiet_and_a_tenant_sees_only_its_own(
    env: AgentEnvironment,
) -> None:
    _endpoint(env.sessions)
    _endpoint(env.sessions, tenant="t2")
    _plant(env.sessions, "succeeded", 30)
    _plant(env.sessions, "failed", 30, tenant="t2")
    agent = _agent(FAILING_TRAINING)
    for _ in range(2):
        result = agent.run(MonitoringInput(), _Run(TENANT, str(uuid.uuid4()), env))
        assert result["rules"][0]["state"] == "ok"
        assert result["rules"][0]["value"] == 0
    assert _alerts(env.sessions) == []
    # t2's agent sees t2's failures, and its alert goes to t2's endpoint only.
    result = agent.run(MonitoringInput(), _Run("t2", str(uuid.uuid4()), env))
    assert result["rules"][0]["state"] == "firing"
    assert [m.tenant_id for m in _alerts(env.sessions)] == ["t2"]


def test_too_few_samples_keep_the_state_and_a_dry_run_records_nothing(
    env: AgentEnvironment,
) -> None:
    _endpoint(env.sessions)
    agent_id = str(uuid.uuid4())
    agent = _agent(FAILING_TRAINING)
    _plant(env.sessions, "failed", 10)
    assert agent.run(MonitoringInput(), _Run(TENANT, agent_id, env))["firing"] == [
        "training failing"
    ]
    # A run whose window holds no ended task has nothing to judge by: still firing.
    narrow = MonitoringInput.model_validate({"rules": [{**FAILING_TRAINING, "window_seconds": 5}]})
    result = agent.run(narrow, _Run(TENANT, agent_id, env))
    assert result["rules"][0]["state"] == "no_data"
    assert result["rules"][0]["samples"] == 0
    assert result["firing"] == ["training failing"]
    assert result["alerts"] == []
    # A dry run that would resolve it reports so and changes nothing.
    lenient = MonitoringInput.model_validate(
        {"rules": [{**FAILING_TRAINING, "threshold": 1.0}], "dry_run": True}
    )
    result = agent.run(lenient, _Run(TENANT, agent_id, env))
    assert result["rules"][0]["state"] == "ok"
    assert result["alerts"] == []
    with env.sessions() as session:
        assert rule_states(session, TENANT, agent_id)["training failing"].state == "firing"
    assert len(_alerts(env.sessions)) == 1


def test_queue_depth_and_oldest_wait_from_real_redis_lists(env: AgentEnvironment) -> None:
    client = env.redis
    # Three messages on ml at the default priority, two at a higher one (another list).
    client.lpush(redis_queue_key("ml", 0), "m1", "m2", "m3")
    client.lpush(redis_queue_key("ml", 3), "m4", "m5")
    now = datetime.now(UTC).timestamp()
    waiting = {"old": (now - 300, "queued", ""), "newer": (now - 30, "queued", "")}
    # Started already (the index is cleaned lazily) or due later: neither waits.
    waiting["started"] = (now - 900, "running", "")
    later = datetime.fromtimestamp(now + 600, UTC).isoformat()
    waiting["scheduled"] = (now - 600, "queued", later)
    for task_id, (score, status, eta) in waiting.items():
        client.zadd(pending_key("ml"), {task_id: score})
        client.hset(task_key(task_id), mapping={"status": status, "eta": eta})
    agent = _agent(
        {"name": "ml backlog", "signal": "queue_depth", "queue": "ml", "op": "ge", "threshold": 5},
        {
            "name": "ml waits",
            "signal": "oldest_age_seconds",
            "queue": "ml",
            "op": "gt",
            "threshold": 240,
        },
        {
            "name": "agents backlog",
            "signal": "queue_depth",
            "queue": "agents",
            "op": "gt",
            "threshold": 0,
        },
    )
    result = agent.run(MonitoringInput(dry_run=True), _Run(TENANT, str(uuid.uuid4()), env))
    rules = {r["name"]: r for r in result["rules"]}
    assert (rules["ml backlog"]["value"], rules["ml backlog"]["state"]) == (5, "firing")
    assert rules["ml waits"]["value"] == pytest.approx(300, abs=30)
    assert rules["ml waits"]["state"] == "firing"
    assert (rules["agents backlog"]["value"], rules["agents backlog"]["state"]) == (0, "ok")


def test_drifted_models_and_webhook_dead_letters_of_the_tenant(env: AgentEnvironment) -> None:
    record_latest(env.redis, LatestVerdict(TENANT, "churn", 2, "r1", True, 0.6, 100.0))
    record_latest(env.redis, LatestVerdict(TENANT, "prices", 1, "r2", False, 0.0, 100.0))
    record_latest(env.redis, LatestVerdict("t2", "churn", 1, "r3", True, 1.0, 100.0))
    endpoint = _endpoint(env.sessions)
    now = datetime.now(UTC)
    with env.sessions.begin() as session:
        for n, failed_at in enumerate([now - timedelta(days=2), now - timedelta(minutes=5)]):
            session.add(
                WebhookMessage(
                    id=f"msg_{uuid.uuid4().hex}",
                    tenant_id=TENANT,
                    endpoint_id=endpoint,
                    event_type="task.failed",
                    dedupe_key=f"k{n}",
                    payload={},
                    status="failed",
                    attempts=8,
                    created_at=failed_at,
                    failed_at=failed_at,
                )
            )
    agent = _agent(
        {"name": "drift", "signal": "drifted_models", "op": "ge", "threshold": 1},
        {"name": "dead letters", "signal": "webhook_dead_letters", "op": "gt", "threshold": 1},
        {
            "name": "dead letters today",
            "signal": "webhook_dead_letters",
            "window_seconds": 86400,
            "op": "gt",
            "threshold": 1,
        },
    )
    result = agent.run(MonitoringInput(), _Run(TENANT, str(uuid.uuid4()), env))
    rules = {r["name"]: r for r in result["rules"]}
    assert rules["drift"]["value"] == 1
    assert rules["drift"]["detail"]["models"] == ["churn"]
    assert rules["drift"]["state"] == "firing"
    assert (rules["dead letters"]["value"], rules["dead letters"]["state"]) == (2, "firing")
    assert rules["dead letters today"]["value"] == 1
    assert rules["dead letters today"]["state"] == "ok"
    assert sorted(result["firing"]) == ["dead letters", "drift"]
    assert sorted(m.payload["rule"] for m in _alerts(env.sessions)) == ["dead letters", "drift"]


def test_a_removed_rule_is_forgotten(env: AgentEnvironment) -> None:
    agent_id = str(uuid.uuid4())
    both = _agent(
        {"name": "a", "signal": "drifted_models", "op": "ge", "threshold": 0},
        {"name": "b", "signal": "drifted_models", "op": "ge", "threshold": 0},
    )
    both.run(MonitoringInput(), _Run(TENANT, agent_id, env))
    one = _agent({"name": "a", "signal": "drifted_models", "op": "ge", "threshold": 0})
    one.run(MonitoringInput(), _Run(TENANT, agent_id, env))
    with env.sessions() as session:
        assert set(rule_states(session, TENANT, agent_id)) == {"a"}


def test_queue_depths_on_rabbitmq() -> None:
    name = f"aia-test-{uuid.uuid4().hex[:8]}"
    with Connection(RABBITMQ_URL, connect_timeout=5) as conn:
        channel = conn.channel()
        channel.queue_declare(queue=name, auto_delete=False)
        try:
            for n in range(3):
                channel.basic_publish(
                    channel.prepare_message(f"m{n}".encode()), exchange="", routing_key=name
                )
            depths = amqp_depths(conn, [name, f"{name}-never-declared"], timeout=5)
            assert depths == {name: 3, f"{name}-never-declared": 0}
        finally:
            conn.channel().queue_delete(name)
