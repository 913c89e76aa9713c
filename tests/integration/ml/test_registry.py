"""The model registry on SQLite and PostgreSQL: numbering, aliases, rollback, the prediction log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.backbone.announcements import to_webhooks
from aia_workers.db.migrate import upgrade
from aia_workers.db.ml import Experiment, ModelVersion, PredictionLog
from aia_workers.db.schema import Base
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.errors import ConflictError, NotFoundError
from aia_workers.ml.registry import ModelRegistry
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str, tmp_path) -> Iterator[Engine]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine = make_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def _experiment(sessions: sessionmaker[Session], tenant: str = "t1", name: str = "churn") -> str:
    experiment = Experiment(
        id=str(uuid.uuid4()),
        tenant_id=tenant,
        name=name,
        model_name=name,
        task="classification",
        dataset_id=str(uuid.uuid4()),
        target="label",
        features=[],
        time_budget_seconds=10,
        metric=None,
        options={},
        latest_version=0,
        created_at=datetime.now(UTC),
    )
    with sessions.begin() as session:
        ModelRegistry(session, tenant, to_webhooks).add_experiment(experiment)
    return experiment.id


def _register(
    sessions: sessionmaker[Session], experiment_id: str, run_id: str, tenant: str = "t1"
) -> int:
    with sessions.begin() as session:
        version = ModelRegistry(session, tenant, to_webhooks).register(
            ModelVersion(
                id=str(uuid.uuid4()),
                tenant_id=tenant,
                model_name="churn",
                experiment_id=experiment_id,
                run_id=run_id,
                task="classification",
                estimator="random_forest",
                params={"n_estimators": 100},
                metrics={"accuracy": 0.9},
                leaderboard=[],
                details={},
                dataset_id="d",
                signature=[{"name": "x", "kind": "numeric"}],
                artifact_key=f"t1/models/{run_id}.pkl",
                artifact_sha256="0" * 64,
                artifact_mac="0" * 64,
                size_bytes=1,
                created_at=datetime.now(UTC),
            )
        )
        return version.version


def test_versions_are_numbered_per_model_and_a_run_registers_once(
    sessions: sessionmaker[Session],
) -> None:
    experiment = _experiment(sessions)
    first_run, second_run = str(uuid.uuid4()), str(uuid.uuid4())
    assert _register(sessions, experiment, first_run) == 1
    assert _register(sessions, experiment, second_run) == 2
    # The same run delivered twice gets back the version it registered.
    assert _register(sessions, experiment, first_run) == 1
    with sessions() as session:
        registry = ModelRegistry(session, "t1", to_webhooks)
        assert [v.version for v in registry.versions("churn")] == [2, 1]
        assert registry.resolve("churn", version=None, alias=None).version == 2
        # Another tenant sees nothing of it.
        assert ModelRegistry(session, "t2").versions("churn") == []
        with pytest.raises(NotFoundError):
            ModelRegistry(session, "t2").resolve("churn", version=None, alias=None)


def test_a_name_is_taken_once_per_tenant(sessions: sessionmaker[Session]) -> None:
    _experiment(sessions)
    with pytest.raises(ConflictError):
        _experiment(sessions)
    _experiment(sessions, tenant="t2")


def test_alias_moves_are_kept_and_rollback_is_one_call(sessions: sessionmaker[Session]) -> None:
    experiment = _experiment(sessions)
    for _ in range(3):
        _register(sessions, experiment, str(uuid.uuid4()))
    with sessions.begin() as session:
        registry = ModelRegistry(session, "t1", to_webhooks)
        registry.move_alias("churn", "production", 1, actor="user:a")
        registry.move_alias("churn", "production", 3, actor="user:b", reason="better f1")
        registry.move_alias("churn", "staging", 2, actor="user:a")
        with pytest.raises(NotFoundError):
            registry.move_alias("churn", "production", 9, actor="user:a")
    with sessions() as session:
        registry = ModelRegistry(session, "t1", to_webhooks)
        # By default, predictions use the production alias rather than the latest.
        assert registry.resolve("churn", version=None, alias=None).version == 3
        assert registry.resolve("churn", version=None, alias="staging").version == 2
        history = registry.alias_history("churn", "production")
        assert [(c.from_version, c.to_version, c.changed_by) for c in history] == [
            (1, 3, "user:b"),
            (None, 1, "user:a"),
        ]
    with sessions.begin() as session:
        change = ModelRegistry(session, "t1", to_webhooks).rollback_alias(
            "churn", "production", actor="user:c"
        )
        assert (change.from_version, change.to_version) == (3, 1)
    with sessions.begin() as session:
        registry = ModelRegistry(session, "t1", to_webhooks)
        assert registry.resolve("churn", version=None, alias=None).version == 1
        # Rolling back the first move of an alias has nowhere to go.
        with pytest.raises(ConflictError):
            registry.rollback_alias("churn", "staging", actor="user:c")
        registry.move_alias("churn", "staging", None, actor="user:c")
        assert registry.alias("churn", "staging") is None
        assert registry.alias_history("churn", "staging")[0].to_version is None


def test_a_decision_to_keep_an_alias_is_history_but_not_a_move(
    sessions: sessionmaker[Session],
) -> None:
    experiment = _experiment(sessions)
    for _ in range(3):
        _register(sessions, experiment, str(uuid.uuid4()))
    kept = {"decision": "kept", "champion": {"version": 2, "score": 0.9}}
    with sessions.begin() as session:
        registry = ModelRegistry(session, "t1", to_webhooks)
        with pytest.raises(NotFoundError):
            # There is nothing to keep before the alias points anywhere.
            registry.keep_alias("churn", "production", actor="a", reason=None, details=kept)
        registry.move_alias("churn", "production", 1, actor="user:a")
        registry.move_alias("churn", "production", 2, actor="task:t", details={"decision": "x"})
        registry.keep_alias("churn", "production", actor="task:u", reason="kept", details=kept)
    with sessions() as session:
        registry = ModelRegistry(session, "t1", to_webhooks)
        assert registry.resolve("churn", version=None, alias=None).version == 2
        history = registry.alias_history("churn", "production")
        assert [(c.from_version, c.to_version, c.details) for c in history] == [
            (2, 2, kept),
            (1, 2, {"decision": "x"}),
            (None, 1, None),
        ]
        moves = registry.alias_history("churn", "production", moves_only=True)
        assert [(c.from_version, c.to_version) for c in moves] == [(1, 2), (None, 1)]
    with sessions.begin() as session:
        # The rollback undoes the last move (1 to 2), passing over the kept decision.
        change = ModelRegistry(session, "t1", to_webhooks).rollback_alias(
            "churn", "production", actor="user:c"
        )
        assert (change.from_version, change.to_version) == (2, 1)


def test_prediction_log_keeps_the_newest(sessions: sessionmaker[Session]) -> None:
    start = datetime.now(UTC)

    def entry(i: int) -> PredictionLog:
        return PredictionLog(
            id=str(uuid.uuid4()),
            tenant_id="t1",
            model_name="churn",
            version=1,
            inputs={"x": i},
            outputs={"prediction": i % 2},
            created_at=start + timedelta(seconds=i),
        )

    for batch in range(3):
        with sessions.begin() as session:
            ModelRegistry(session, "t1", to_webhooks).log_predictions(
                [entry(batch * 10 + i) for i in range(10)], keep=15
            )
    with sessions() as session:
        kept = ModelRegistry(session, "t1", to_webhooks).predictions("churn", limit=100)
    assert [p.inputs["x"] for p in kept] == list(range(29, 14, -1))
