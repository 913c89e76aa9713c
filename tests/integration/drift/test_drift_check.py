"""A drift check from the prediction log to a stored report, on SQLite and PostgreSQL.

The domain alone (no broker): the report is stored once per task, drift is
announced through the sink in the report's transaction, and the model's drift
policy decides the retrain.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.backbone.announcements import to_webhooks
from aia_workers.db.drift import DriftReport
from aia_workers.db.migrate import upgrade
from aia_workers.db.ml import Experiment, ModelVersion, PredictionLog
from aia_workers.drift.contracts.payloads import DriftCheckPayload, DriftPolicyBody, RetrainOn
from aia_workers.drift.errors import DriftInputError
from aia_workers.drift.policies import PolicyRepository
from aia_workers.drift.profile import build_reference
from aia_workers.drift.references import add_reference, put_sample, sample_key
from aia_workers.drift.reports import ReportRepository
from aia_workers.drift.run import check_drift, outcome_of
from aia_workers.drift.sweep import sweep_targets
from aia_workers.errors import TaskFailure
from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.registry import ModelRegistry
from aia_workers.ml.runtime import MLRuntime
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration

TENANT = "t1"
SIGNATURE = [{"name": "x", "kind": "numeric"}, {"name": "c", "kind": "categorical"}]


class _Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any], str]] = []

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
        to_webhooks(session, tenant, event_type, payload, dedupe_key=dedupe_key)
        self.events.append((tenant, event_type, dict(payload), dedupe_key))


@pytest.fixture
def rt(database_url: str, tmp_path: Path) -> Iterator[MLRuntime]:
    settings = Settings(
        database_url=database_url,
        data_home=tmp_path,
        artifact_key="k" * 48,
        drift_min_current_rows=100,
    )
    upgrade(settings)
    runtime = MLRuntime.from_settings(settings)
    yield runtime
    runtime.sessions.kw["bind"].dispose()


def _frame(rows: int, seed: int, shift: float = 0.0, c_shares: Any = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(loc=shift, size=rows),
            "c": rng.choice(["a", "b", "c"], rows, p=c_shares).astype(object),
        }
    )


def _predict(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [{"prediction": 2 * float(x)} for x in rows["x"].fillna(0)]


def _model(
    sessions: sessionmaker[Session], name: str = "churn", metrics: dict[str, float] | None = None
) -> ModelVersion:
    """A registered regression version of ``name`` with a reference of 800 rows."""
    experiment_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    with sessions.begin() as session:
        registry = ModelRegistry(session, TENANT, to_webhooks)
        registry.add_experiment(
            Experiment(
                id=experiment_id,
                tenant_id=TENANT,
                name=name,
                model_name=name,
                task="regression",
                dataset_id="d",
                target="y",
                features=["x", "c"],
                time_budget_seconds=10,
                options={},
                latest_version=0,
                created_at=now,
            )
        )
        return registry.register(
            ModelVersion(
                id=str(uuid.uuid4()),
                tenant_id=TENANT,
                model_name=name,
                experiment_id=experiment_id,
                run_id=run_id,
                task="regression",
                estimator="ridge",
                params={},
                metrics=metrics or {},
                leaderboard=[],
                details={},
                dataset_id="d",
                signature=SIGNATURE,
                artifact_key=f"{TENANT}/models/{run_id}.pkl",
                artifact_sha256="0" * 64,
                artifact_mac="0" * 64,
                size_bytes=1,
                created_at=now,
            )
        )


def _reference(rt: MLRuntime, version: ModelVersion) -> None:
    reference = build_reference(
        _frame(800, seed=1), SIGNATURE, MLTask.REGRESSION, _predict, sample_rows=800, seed=1
    )
    sample = put_sample(
        rt.artifacts,
        rt.signer,
        TENANT,
        sample_key(TENANT, version.experiment_id, version.run_id),
        reference.sample,
    )
    with rt.sessions.begin() as session:
        add_reference(session, TENANT, version.id, reference.profile, sample)


def _log(
    rt: MLRuntime,
    version: ModelVersion,
    frame: pd.DataFrame,
    at: datetime,
    labels: list[float] | None = None,
) -> None:
    entries = [
        PredictionLog(
            id=str(uuid.uuid4()),
            tenant_id=TENANT,
            model_name=version.model_name,
            version=version.version,
            task_id=None,
            inputs={"x": float(row.x), "c": row.c},
            outputs=out,
            label=None if labels is None else labels[i],
            labelled_at=None if labels is None else at,
            created_at=at,
        )
        for i, (row, out) in enumerate(zip(frame.itertuples(), _predict(frame), strict=True))
    ]
    with rt.sessions.begin() as session:
        ModelRegistry(session, TENANT).log_predictions(entries, keep=100_000)


def _check(rt: MLRuntime, sink: _Sink, task_id: str | None = None, **fields: Any) -> Any:
    payload = DriftCheckPayload.model_validate({"model": "churn", **fields})
    return check_drift(rt, TENANT, payload, task_id=task_id or str(uuid.uuid4()), events=sink)


def test_a_shifted_window_drifts_on_the_shifted_feature_only(rt: MLRuntime) -> None:
    version = _model(rt.sessions)
    _reference(rt, version)
    then = datetime.now(UTC) - timedelta(hours=2)
    _log(rt, version, _frame(400, seed=2), then)
    _log(rt, version, _frame(400, seed=3, shift=1.0), datetime.now(UTC))
    sink = _Sink()

    calm = _check(rt, sink, until=(then + timedelta(minutes=1)).isoformat())
    assert calm.window["rows"] == 400
    assert not calm.drifted
    assert calm.drifted_features == []
    assert calm.prediction_drifted is False
    assert sink.events == []

    # The later window: x moved by one standard deviation, c did not.
    shifted = _check(rt, sink, since=(then + timedelta(minutes=1)).isoformat())
    assert shifted.window["rows"] == 400
    assert shifted.drifted_features == ["x"]
    assert shifted.drifted_share == 0.5
    assert shifted.drifted
    assert shifted.prediction_drifted is True  # prediction is 2x
    [(tenant, event, payload, key)] = sink.events
    assert (tenant, event, key) == (
        TENANT,
        "model.drift_detected",
        f"model.drift_detected:{shifted.report_id}",
    )
    assert payload["report_id"] == shifted.report_id
    assert payload["drifted_features"] == ["x"]
    assert payload["version"] == version.version
    with rt.sessions() as session:
        stored = ReportRepository(session, TENANT).get("churn", shifted.report_id)
        assert stored is not None
        features = {f["feature"]: f for f in stored.features["features"]}
        # At most 1,000 reference rows: KS for numbers, chi-squared for categories.
        assert features["x"]["test"] == "ks"
        assert features["x"]["drifted"]
        assert features["c"]["test"] == "chisquare"
        assert not features["c"]["drifted"]
        assert features["x"]["reference_count"] == 800
        assert features["x"]["current_count"] == 400
        assert stored.performance is None
        assert stored.retrain is None  # the default policy never retrains
        page, _ = ReportRepository(session, TENANT).page("churn", limit=10, cursor=None)
        assert [r.id for r in page] == [shifted.report_id, calm.report_id]
        # Another tenant sees none of them.
        assert ReportRepository(session, "t2").get("churn", shifted.report_id) is None


def test_a_task_delivered_twice_stores_one_report(rt: MLRuntime) -> None:
    version = _model(rt.sessions)
    _reference(rt, version)
    _log(rt, version, _frame(300, seed=4, shift=2.0), datetime.now(UTC))
    sink = _Sink()
    task_id = str(uuid.uuid4())
    first = _check(rt, sink, task_id)
    again = _check(rt, sink, task_id)
    assert again.replayed
    assert again.report_id == first.report_id
    with rt.sessions() as session:
        count = session.scalar(select(func.count()).select_from(DriftReport))
    assert count == 1
    assert len(sink.events) == 1


def test_the_policy_decides_the_retrain(rt: MLRuntime) -> None:
    version = _model(rt.sessions)
    _reference(rt, version)
    _log(rt, version, _frame(300, seed=5, shift=2.0), datetime.now(UTC))
    with rt.sessions.begin() as session:
        PolicyRepository(session, TENANT).put(
            "churn",
            DriftPolicyBody(retrain_on=RetrainOn.DATASET_DRIFT, alias="production", margin=0.02),
            actor="user:1",
        )
    outcome = _check(rt, _Sink())
    assert outcome.retrain is not None
    assert outcome.retrain_payload() == {
        "model": "churn",
        "alias": "production",
        "margin": 0.02,
        "trigger": "drift",
        "report_id": outcome.report_id,
    }
    with rt.sessions.begin() as session:
        ReportRepository(session, TENANT).record_retrain(outcome.report_id, task_id="t-42")
    with rt.sessions() as session:
        report = ReportRepository(session, TENANT).get("churn", outcome.report_id)
        assert report is not None
        assert report.retrain["task_id"] == "t-42"
        # Once submitted, the report asks for nothing more (a redelivered check submits nothing).
        assert outcome_of(report).retrain_payload() is None
    with rt.sessions.begin() as session:
        PolicyRepository(session, TENANT).put(
            "churn", DriftPolicyBody(retrain_on=RetrainOn.PERFORMANCE_DROP), actor=None
        )
    # Without labelled feedback there is no performance to drop: no retrain on input drift.
    assert _check(rt, _Sink()).retrain is None


def test_labelled_feedback_measures_performance_and_a_drop_retrains(rt: MLRuntime) -> None:
    version = _model(rt.sessions, metrics={"r2": 0.95})
    _reference(rt, version)
    with rt.sessions.begin() as session:
        PolicyRepository(session, TENANT).put(
            "churn", DriftPolicyBody(retrain_on=RetrainOn.PERFORMANCE_DROP), actor=None
        )
    held = _frame(300, seed=7)
    truth = [p["prediction"] for p in _predict(held)]
    before = datetime.now(UTC)
    _log(rt, version, held, before, labels=truth)
    steady = _check(rt, _Sink(), until=(before + timedelta(seconds=1)).isoformat())
    assert steady.performance["metric"] == "r2"
    assert steady.performance["live"] == pytest.approx(1.0)
    assert steady.performance["labels"] == 300
    assert not steady.performance["drifted"]
    assert steady.retrain is None

    fell = _frame(300, seed=8)
    noise = np.random.default_rng(8).normal(scale=3.0, size=300)
    later = before + timedelta(seconds=5)
    _log(
        rt,
        version,
        fell,
        later,
        labels=[p["prediction"] + n for p, n in zip(_predict(fell), noise, strict=True)],
    )
    dropped = _check(rt, _Sink(), since=later.isoformat())
    assert not dropped.drifted, "the inputs did not move; only the answers went wrong"
    assert dropped.performance["drifted"]
    assert dropped.performance["labels"] == 300
    assert dropped.performance["live"] < 0.9
    assert dropped.retrain_payload()["trigger"] == "performance"


def test_checks_that_cannot_run_fail_clearly(rt: MLRuntime) -> None:
    version = _model(rt.sessions)
    sink = _Sink()
    with pytest.raises(TaskFailure, match="no drift reference"):
        _check(rt, sink)
    _reference(rt, version)
    _log(rt, version, _frame(50, seed=6), datetime.now(UTC))
    with pytest.raises(DriftInputError, match=r"50 rows .* fewer than the 100"):
        _check(rt, sink)
    _log(rt, version, _frame(100, seed=7), datetime.now(UTC))
    with pytest.raises(DriftInputError, match="'nope'"):
        _check(rt, sink, config={"features": {"nope": {"test": "psi"}}})
    with pytest.raises(TaskFailure, match="no version 9"):
        _check(rt, sink, version=9)
    with pytest.raises(TaskFailure, match="no model 'other'"):
        check_drift(
            rt,
            TENANT,
            DriftCheckPayload(model="other"),
            task_id=str(uuid.uuid4()),
            events=sink,
        )
    # A per-feature choice of test and threshold is applied, and may name an output.
    outcome = _check(
        rt,
        sink,
        config={
            "features": {
                "x": {"test": "psi", "threshold": 5},
                "prediction": {"test": "wasserstein"},
            }
        },
    )
    with rt.sessions() as session:
        report = ReportRepository(session, TENANT).get("churn", outcome.report_id)
        assert report is not None
        x = report.features["features"][0]
        assert (x["feature"], x["test"], x["threshold"]) == ("x", "psi", 5)
        assert report.predictions["features"][0]["test"] == "wasserstein"
    assert sink.events == []


def test_the_sweep_finds_production_models_with_a_reference(rt: MLRuntime) -> None:
    checked = _model(rt.sessions, "checked")
    _reference(rt, checked)
    unreferenced = _model(rt.sessions, "old")
    _model(rt.sessions, "no-alias")
    with rt.sessions.begin() as session:
        registry = ModelRegistry(session, TENANT, to_webhooks)
        registry.move_alias("checked", "production", checked.version, actor=None)
        registry.move_alias("old", "production", unreferenced.version, actor=None)
    with rt.sessions() as session:
        targets = sweep_targets(session)
    assert [(t.tenant, t.model) for t in targets] == [(TENANT, "checked")]
    assert targets[0].payload() == {"model": "checked", "alias": "production"}
