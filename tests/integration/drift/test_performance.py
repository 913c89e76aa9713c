"""Performance drift on SQLite and PostgreSQL: labelled predictions planted, the metric compared."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.backbone.announcements import to_webhooks
from aia_workers.db.migrate import upgrade
from aia_workers.db.ml import Experiment, ModelVersion, PredictionLog
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.drift.contracts.checks import PerformanceConfig
from aia_workers.drift.errors import DriftInputError
from aia_workers.drift.performance import measure_performance
from aia_workers.ml.registry import ModelRegistry
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration

CONFIG = PerformanceConfig()
START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine: Engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


def _model(
    sessions: sessionmaker[Session],
    name: str,
    task: str,
    versions: Sequence[dict[str, float]],
    *,
    metric: str | None,
    tenant: str = "t1",
) -> None:
    """An experiment and one version per entry of ``versions`` (the metrics training recorded)."""
    experiment_id = str(uuid.uuid4())
    with sessions.begin() as session:
        registry = ModelRegistry(session, tenant, to_webhooks)
        registry.add_experiment(
            Experiment(
                id=experiment_id,
                tenant_id=tenant,
                name=name,
                model_name=name,
                task=task,
                dataset_id="d",
                target="y",
                features=["x"],
                time_budget_seconds=10,
                metric=metric,
                options={},
                latest_version=0,
                created_at=START,
            )
        )
        for metrics in versions:
            run_id = str(uuid.uuid4())
            registry.register(
                ModelVersion(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant,
                    model_name=name,
                    experiment_id=experiment_id,
                    run_id=run_id,
                    task=task,
                    estimator="random_forest",
                    params={},
                    metrics=metrics,
                    leaderboard=[],
                    # The tabular search records the metric it optimised.
                    details={"metric": metric} if metric else {},
                    dataset_id="d",
                    signature=[{"name": "x", "kind": "numeric"}],
                    artifact_key=f"{tenant}/models/{run_id}.pkl",
                    artifact_sha256="0" * 64,
                    artifact_mac="0" * 64,
                    size_bytes=1,
                    created_at=START,
                )
            )


def _log(
    sessions: sessionmaker[Session],
    name: str,
    version: int,
    pairs: Sequence[tuple[Any, Any]],
    *,
    tenant: str = "t1",
    at: datetime = START,
) -> None:
    """Logged predictions with their labels: (prediction, label), label None for unlabelled."""
    with sessions.begin() as session:
        for i, (prediction, label) in enumerate(pairs):
            session.add(
                PredictionLog(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant,
                    model_name=name,
                    version=version,
                    inputs={"x": i},
                    outputs={"prediction": prediction},
                    created_at=at + timedelta(seconds=i),
                    label=label,
                    labelled_at=None if label is None else at + timedelta(days=1),
                )
            )


def _classified(right: int, wrong: int) -> list[tuple[int, int]]:
    return [(1, 1)] * right + [(1, 0)] * wrong


def test_a_version_whose_accuracy_fell_drifts_and_one_that_held_does_not(
    sessions: sessionmaker[Session],
) -> None:
    trained = {"accuracy": 0.9, "f1": 0.88}
    _model(sessions, "churn", "classification", [trained, trained], metric="accuracy")
    _log(sessions, "churn", 1, _classified(28, 12))  # 0.70
    _log(sessions, "churn", 2, _classified(35, 5))  # 0.875
    # Unlabelled predictions are not scored, however wrong they would be.
    _log(sessions, "churn", 2, [(0, None)] * 50)

    with sessions() as session:
        fell = measure_performance(session, "t1", "churn", 1, config=CONFIG)
        held = measure_performance(session, "t1", "churn", 2, config=CONFIG)

    assert fell is not None
    assert fell.metric == "accuracy"
    assert fell.labels == 40
    assert fell.training == pytest.approx(0.9)
    assert fell.live == pytest.approx(0.70)
    assert fell.drop == pytest.approx(0.20)
    assert fell.drifted
    assert held is not None
    assert held.labels == 40
    assert held.live == pytest.approx(0.875)
    assert not held.drifted
    assert fell.as_json()["drifted"] is True


def test_the_experiments_metric_is_the_one_compared(sessions: sessionmaker[Session]) -> None:
    _model(sessions, "fraud", "classification", [{"accuracy": 0.9, "f1": 0.9}], metric="f1")
    _log(sessions, "fraud", 1, _classified(30, 10))
    with sessions() as session:
        result = measure_performance(session, "t1", "fraud", 1, config=CONFIG)
    assert result is not None
    assert result.metric == "f1"


def test_too_few_labels_measure_nothing(sessions: sessionmaker[Session]) -> None:
    _model(sessions, "churn", "classification", [{"accuracy": 0.9}], metric="accuracy")
    _log(sessions, "churn", 1, _classified(10, 19))
    # Another tenant's labels on a model of the same name are not this one's.
    _model(sessions, "churn", "classification", [{"accuracy": 0.9}], metric="accuracy", tenant="t2")
    _log(sessions, "churn", 1, _classified(0, 40), tenant="t2")
    with sessions() as session:
        assert measure_performance(session, "t1", "churn", 1, config=CONFIG) is None
        fewer = PerformanceConfig(min_labels=29)
        result = measure_performance(session, "t1", "churn", 1, config=fewer)
    assert result is not None
    assert result.labels == 29
    assert result.drifted


def test_the_window_is_of_prediction_times(sessions: sessionmaker[Session]) -> None:
    _model(sessions, "churn", "classification", [{"accuracy": 0.9}], metric="accuracy")
    _log(sessions, "churn", 1, _classified(10, 30), at=START)
    later = START + timedelta(days=7)
    _log(sessions, "churn", 1, _classified(36, 4), at=later)
    with sessions() as session:
        before = measure_performance(session, "t1", "churn", 1, until=later, config=CONFIG)
        after = measure_performance(session, "t1", "churn", 1, since=later, config=CONFIG)
        both = measure_performance(session, "t1", "churn", 1, config=CONFIG)
    assert before is not None
    assert after is not None
    assert both is not None
    assert (before.labels, after.labels, both.labels) == (40, 40, 80)
    assert before.drifted
    assert not after.drifted


def test_a_regression_error_that_grew_drifts(sessions: sessionmaker[Session]) -> None:
    trained = {"r2": 0.8, "mae": 1.0, "rmse": 1.0}
    _model(sessions, "price", "regression", [trained, trained], metric="rmse")
    _log(sessions, "price", 1, [(10.0, 11.5)] * 20 + [(10.0, 8.5)] * 20)  # rmse 1.5
    _log(sessions, "price", 2, [(10.0, 11.0)] * 20 + [(10.0, 9.0)] * 20)  # rmse 1.0
    with sessions() as session:
        grew = measure_performance(session, "t1", "price", 1, config=CONFIG)
        held = measure_performance(session, "t1", "price", 2, config=CONFIG)
    assert grew is not None
    assert grew.live == pytest.approx(1.5)
    assert grew.drop == pytest.approx(0.5)
    assert grew.drifted
    assert held is not None
    assert held.live == pytest.approx(1.0)
    assert not held.drifted


def test_kinds_without_labels_and_unknown_versions(sessions: sessionmaker[Session]) -> None:
    _model(sessions, "sales", "forecasting", [{"mase": 0.8}], metric=None)
    with sessions() as session:
        assert measure_performance(session, "t1", "sales", 1, config=CONFIG) is None
        with pytest.raises(DriftInputError, match="no version 2"):
            measure_performance(session, "t1", "sales", 2, config=CONFIG)
        with pytest.raises(DriftInputError):
            measure_performance(session, "t2", "sales", 1, config=CONFIG)
