"""The registry announces a new version and each alias move through its sink, in its transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.migrate import upgrade
from aia_workers.db.ml import Experiment, ModelVersion
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.ml.registry import ModelRegistry
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Session, str, str, dict[str, Any], str]] = []

    def __call__(
        self,
        session: Session,
        tenant: str,
        event_type: str,
        payload: Mapping[str, Any],
        /,
        *,
        dedupe_key: str,
    ) -> None:
        self.events.append((session, tenant, event_type, dict(payload), dedupe_key))


@pytest.fixture
def sessions(database_url: str, tmp_path) -> Iterator[sessionmaker[Session]]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine: Engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


def _version(experiment_id: str, run_id: str) -> ModelVersion:
    return ModelVersion(
        id=str(uuid.uuid4()),
        tenant_id="t1",
        model_name="churn",
        experiment_id=experiment_id,
        run_id=run_id,
        task="classification",
        estimator="random_forest",
        params={},
        metrics={"accuracy": 0.9},
        leaderboard=[],
        details={},
        dataset_id="d",
        signature=[],
        artifact_key=f"t1/models/{run_id}.pkl",
        artifact_sha256="0" * 64,
        artifact_mac="0" * 64,
        size_bytes=1,
        created_at=datetime.now(UTC),
    )


def test_a_version_and_an_alias_move_are_announced_once_each(
    sessions: sessionmaker[Session],
) -> None:
    sink = _Recorder()
    experiment = Experiment(
        id=str(uuid.uuid4()),
        tenant_id="t1",
        name="churn",
        model_name="churn",
        task="classification",
        dataset_id="d",
        target="label",
        features=[],
        time_budget_seconds=10,
        metric=None,
        options={},
        latest_version=0,
        created_at=datetime.now(UTC),
    )
    run_id = str(uuid.uuid4())
    with sessions.begin() as session:
        registry = ModelRegistry(session, "t1", sink)
        registry.add_experiment(experiment)
        version = registry.register(_version(experiment.id, run_id))
        change = registry.move_alias("churn", "production", 1, actor="user:a", reason="first")
        # The same run registered again finds its version and announces nothing.
        registry.register(_version(experiment.id, run_id))
        assert all(event[0] is session for event in sink.events)
    assert [(e[1], e[2], e[4]) for e in sink.events] == [
        ("t1", "model.version_created", f"model.version_created:{version.id}"),
        ("t1", "model.alias_changed", f"model.alias_changed:{change.id}"),
    ]
    assert sink.events[0][3]["version"] == 1
    assert sink.events[1][3] == {
        "model": "churn",
        "alias": "production",
        "from_version": None,
        "to_version": 1,
        "changed_by": "user:a",
        "reason": "first",
    }


def test_a_registry_without_events_refuses_a_change_no_one_would_hear_of(
    sessions: sessionmaker[Session],
) -> None:
    experiment = Experiment(
        id=str(uuid.uuid4()),
        tenant_id="t1",
        name="quiet",
        model_name="quiet",
        task="classification",
        dataset_id="d",
        target="label",
        features=[],
        time_budget_seconds=10,
        metric=None,
        options={},
        latest_version=0,
        created_at=datetime.now(UTC),
    )
    with sessions.begin() as session:
        ModelRegistry(session, "t1").add_experiment(experiment)
    with pytest.raises(TypeError, match=r"model\.version_created"), sessions.begin() as session:
        ModelRegistry(session, "t1").register(_version(experiment.id, str(uuid.uuid4())))
    with sessions.begin() as session:
        assert ModelRegistry(session, "t1").versions("quiet") == []
