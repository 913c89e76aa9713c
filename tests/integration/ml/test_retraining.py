"""Champion and challenger on SQLite and PostgreSQL: real training, real scoring, no broker.

The data: ``y = 3·a + noise`` at first, then ``y = -3·a + 2·b + noise`` (the
relation changed), so a model of the old data scores badly on the new.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.orm import Session

from aia_workers.db.migrate import upgrade
from aia_workers.db.ml import Dataset, Experiment
from aia_workers.errors import TaskFailure
from aia_workers.ml.contracts.ingest import profile_csv
from aia_workers.ml.contracts.payloads import RetrainPayload
from aia_workers.ml.datasets import DatasetRepository
from aia_workers.ml.registry import ModelRegistry
from aia_workers.ml.retraining import retrain
from aia_workers.ml.runtime import MLRuntime
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration

TENANT = "t1"


class _Announced:
    """The events a retrain announces, as the webhook outbox would take them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

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
        assert tenant == TENANT
        self.events.append((event_type, dict(payload)))

    def moves(self) -> list[tuple[int | None, int | None]]:
        return [
            (p["from_version"], p["to_version"])
            for t, p in self.events
            if t == "model.alias_changed"
        ]


@pytest.fixture
def rt(database_url: str, tmp_path: Path) -> Iterator[MLRuntime]:
    settings = Settings(database_url=database_url, data_home=tmp_path, artifact_key="r" * 48)
    upgrade(settings)
    runtime = MLRuntime.from_settings(settings)
    yield runtime
    runtime.sessions.kw["bind"].dispose()


def _frame(relation: str, rows: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    noise = rng.normal(scale=0.1, size=rows)
    y = 3 * a + noise if relation == "old" else -3 * a + 2 * b + noise
    return pd.DataFrame({"a": a, "b": b, "y": y})


def _dataset(rt: MLRuntime, frame: pd.DataFrame) -> str:
    out = io.StringIO()
    frame.to_csv(out, index=False)
    data = out.getvalue().encode()
    profile = profile_csv(io.BytesIO(data))
    dataset_id = str(uuid.uuid4())
    key = f"{TENANT}/datasets/{dataset_id}.csv"
    digest = rt.artifacts.put(key, data)
    with rt.sessions.begin() as session:
        DatasetRepository(session, TENANT).add(
            Dataset(
                id=dataset_id,
                tenant_id=TENANT,
                name="data",
                rows=profile.rows,
                columns=profile.as_json()["columns"],
                size_bytes=len(data),
                artifact_key=key,
                sha256=digest,
                created_at=datetime.now(UTC),
            )
        )
    return dataset_id


def _model(rt: MLRuntime, dataset_id: str, task: str = "regression", **fields: Any) -> str:
    name = f"m-{uuid.uuid4().hex[:8]}"
    values: dict[str, Any] = {
        "target": "y",
        "features": [],
        "time_budget_seconds": 5,
        "metric": None,
        "options": {"estimator": "ridge"},
        **fields,
    }
    with rt.sessions.begin() as session:
        ModelRegistry(session, TENANT).add_experiment(
            Experiment(
                id=str(uuid.uuid4()),
                tenant_id=TENANT,
                name=name,
                model_name=name,
                task=task,
                dataset_id=dataset_id,
                latest_version=0,
                created_at=datetime.now(UTC),
                **values,
            )
        )
    return name


def _retrain(
    rt: MLRuntime, sink: _Announced, task_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    payload = RetrainPayload.model_validate({"seed": 1, **fields})
    return retrain(rt, TENANT, payload, task_id=task_id or str(uuid.uuid4()), events=sink)


def test_a_challenger_takes_the_alias_only_when_it_wins_by_the_margin(rt: MLRuntime) -> None:
    old, new = _dataset(rt, _frame("old")), _dataset(rt, _frame("new", seed=1))
    name = _model(rt, old)
    sink = _Announced()

    first = _retrain(rt, sink, model=name)
    assert first["decision"] == "no_champion"
    assert first["version"] == 1
    assert first["details"]["champion"] == {"version": None, "score": None}
    assert first["details"]["challenger"]["score"] > 0.95  # r2 on the old relation

    # New data where the relation changed: the champion of the old data loses.
    second = _retrain(rt, sink, model=name, dataset_id=new, trigger="drift", report_id="r-1")
    details = second["details"]
    assert second["decision"] == "promoted"
    assert second["version"] == 2
    assert details["metric"] == "r2"
    assert details["champion"]["version"] == 1
    assert details["champion"]["score"] < 0 < 0.95 < details["challenger"]["score"]
    assert (details["trigger"], details["report_id"]) == ("drift", "r-1")
    assert details["dataset_id"] == new
    assert details["holdout_rows"] == 24  # 20 % of 120

    # Better by less than a huge margin: the alias stays, and the decision is kept.
    third = _retrain(rt, sink, model=name, dataset_id=new, margin=100.0)
    assert third["decision"] == "kept"
    assert third["version"] == 2
    assert third["details"]["challenger"]["version"] == 3
    assert third["details"]["margin"] == 100.0

    with rt.sessions() as session:
        registry = ModelRegistry(session, TENANT)
        assert registry.alias(name, "production").version == 2  # type: ignore[union-attr]
        assert [v.version for v in registry.versions(name)] == [3, 2, 1]
        history = registry.alias_history(name, "production")
        assert [(c.from_version, c.to_version, c.details["decision"]) for c in history] == [
            (2, 2, "kept"),
            (1, 2, "promoted"),
            (None, 1, "no_champion"),
        ]
        assert history[1].details == details
        assert "challenger v2 r2" in (history[1].reason or "")
        # Each challenger trained as a run of the experiment, less the holdout.
        version = registry.version(name, 2)
        assert version is not None
        assert version.dataset_id == new
        assert version.details["rows"] == {"train": 76, "holdout": 20}  # of 96
    # Only the two moves are announced; the kept decision is not.
    assert sink.moves() == [(None, 1), (1, 2)]
    announced = [p for t, p in sink.events if t == "model.alias_changed"]
    assert announced[1]["details"] == details
    assert [p["version"] for t, p in sink.events if t == "model.version_created"] == [1, 2, 3]


def test_lower_is_better_metrics_are_read_the_right_way(rt: MLRuntime) -> None:
    old, new = _dataset(rt, _frame("old")), _dataset(rt, _frame("new", seed=2))
    name = _model(rt, old, metric="mae")
    sink = _Announced()
    _retrain(rt, sink, model=name)
    promoted = _retrain(rt, sink, model=name, dataset_id=new)
    scores = promoted["details"]
    assert promoted["decision"] == "promoted"
    assert scores["challenger"]["score"] < scores["champion"]["score"]


def test_a_task_delivered_twice_decides_once(rt: MLRuntime) -> None:
    name = _model(rt, _dataset(rt, _frame("old")))
    sink = _Announced()
    task_id = str(uuid.uuid4())
    first = _retrain(rt, sink, task_id, model=name, seed=None)
    again = _retrain(rt, sink, task_id, model=name, seed=None)
    assert again == first
    assert sink.moves() == [(None, 1)]
    with rt.sessions() as session:
        registry = ModelRegistry(session, TENANT)
        assert len(registry.alias_history(name)) == 1
        assert [v.version for v in registry.versions(name)] == [1]


def test_data_without_the_models_columns_is_refused_naming_them(rt: MLRuntime) -> None:
    name = _model(rt, _dataset(rt, _frame("old")))
    sink = _Announced()
    _retrain(rt, sink, model=name)
    other = _dataset(rt, _frame("new").rename(columns={"a": "alpha", "y": "why"}))
    with pytest.raises(TaskFailure, match=r"lacks the column\(s\) 'y', 'a'"):
        _retrain(rt, sink, model=name, dataset_id=other)
    with pytest.raises(TaskFailure, match="there is no model 'nope'"):
        _retrain(rt, sink, model="nope")
    with pytest.raises(TaskFailure, match="there is no dataset"):
        _retrain(rt, sink, model=name, dataset_id=str(uuid.uuid4()))
    with rt.sessions() as session:
        # Refused before anything trained.
        assert [v.version for v in ModelRegistry(session, TENANT).versions(name)] == [1]


def test_models_with_no_holdout_score_are_refused(rt: MLRuntime) -> None:
    dataset = _dataset(rt, _frame("old"))
    name = _model(rt, dataset, task="anomaly_detection", target=None, options={})
    with pytest.raises(TaskFailure, match="anomaly_detection model cannot be retrained"):
        _retrain(rt, _Announced(), model=name)
