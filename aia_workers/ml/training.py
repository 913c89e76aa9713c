"""One training run, from the stored dataset to a registered model version.

Free of Celery: ``ml.train`` calls ``train_run`` with the process's runtime.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from aia_workers.backbone.progress import ProgressReporter, discard_progress
from aia_workers.db.ml import Experiment, ModelVersion
from aia_workers.drift.profile import ReferenceProfile, ReferenceSample, build_reference
from aia_workers.drift.references import add_reference, put_sample, sample_key
from aia_workers.errors import TaskFailure
from aia_workers.ml.artifacts import IntegrityError
from aia_workers.ml.budget import grace_seconds, hard_stop
from aia_workers.ml.contracts.options import OptionLimits, check_budget, check_options
from aia_workers.ml.contracts.payloads import MLTask, TrainPayload
from aia_workers.ml.contracts.signatures import check_experiment
from aia_workers.ml.contracts.tables import ColumnKind, DatasetError
from aia_workers.ml.datasets import DatasetRepository
from aia_workers.ml.isolation import run_in_child
from aia_workers.ml.registry import ModelEvents, ModelRegistry, RunStatus
from aia_workers.ml.runtime import MLRuntime
from aia_workers.ml.serving import dump_model
from aia_workers.ml.trainers.fitted import Fitted, TrainingSpec, json_safe
from aia_workers.ml.trainers.frames import classification_labels, frame_from_csv

__all__ = ["TrainingInputs", "load_inputs", "preload_trainers", "train_fitted", "train_run"]

# Where each kind's trainer lives: imported when first needed.
_TRAINERS: Mapping[MLTask, tuple[str, str]] = {
    MLTask.CLASSIFICATION: ("aia_workers.ml.trainers.automl", "search_tabular"),
    MLTask.REGRESSION: ("aia_workers.ml.trainers.automl", "search_tabular"),
    MLTask.FORECASTING: ("aia_workers.ml.trainers.forecasting", "train_forecaster"),
    MLTask.TEXT_CLASSIFICATION: ("aia_workers.ml.trainers.text", "train_text_classifier"),
    MLTask.SENTIMENT: ("aia_workers.ml.trainers.sentiment", "train_sentiment"),
    MLTask.ANOMALY_DETECTION: ("aia_workers.ml.trainers.anomaly", "train_anomaly_detector"),
}

_LEADERBOARD_KEPT = 200


@dataclass(frozen=True, slots=True)
class TrainingInputs:
    """What a run trains on: the typed rows, the spec, the model's signature, the dataset."""

    frame: pd.DataFrame
    spec: TrainingSpec
    signature: list[dict[str, str]]
    dataset_id: str


@dataclass(frozen=True, slots=True)
class _Trained:
    """What a training sends back from its child process: the model's bytes and its record."""

    model: bytes
    estimator: str
    params: dict[str, Any]
    metrics: dict[str, float]
    fit_seconds: float
    leaderboard: list[dict[str, Any]]  # as stored, best first
    details: dict[str, Any]
    reference: dict[str, Any]  # the drift reference's profile and sample, as JSON


def preload_trainers() -> None:
    """Import every trainer now (torch alone takes seconds) rather than in the first run."""
    for module, _ in _TRAINERS.values():
        importlib.import_module(module)


def train_fitted(
    task: MLTask, frame: pd.DataFrame, spec: TrainingSpec, report: ProgressReporter
) -> Fitted:
    """Call the trainer for ``task``."""
    module, name = _TRAINERS[task]
    trainer = getattr(importlib.import_module(module), name)
    if task in (MLTask.CLASSIFICATION, MLTask.REGRESSION):
        from aia_workers.ml.trainers.tabular import TabularTask

        fitted: Fitted = trainer(frame, spec, TabularTask(task.value), report)
    else:
        fitted = trainer(frame, spec, report)
    return fitted


def train_run(
    rt: MLRuntime,
    tenant: str,
    payload: TrainPayload,
    *,
    task_id: str | None,
    events: ModelEvents,
    report: ProgressReporter = discard_progress,
    inputs: TrainingInputs | None = None,
) -> dict[str, Any]:
    """Train the run's experiment, store the model, register a version; a summary back.

    The new version is announced through ``events`` in the transaction that
    registers it. ``inputs`` are the rows to train on when the caller has
    loaded them already (``load_inputs``), perhaps fewer: a retrain keeps a
    holdout back; by default the run's dataset, whole.

    Problems a person must fix (bad data, options out of bounds, a changed
    artifact, a run past its budget or memory cap) end the run as failed with
    TaskFailure; anything else fails it and propagates.
    """
    with rt.sessions.begin() as session:
        registry = ModelRegistry(session, tenant)
        experiment = registry.experiment(payload.experiment_id)
        run = registry.run(payload.run_id)
        if experiment is None or run is None or run.experiment_id != experiment.id:
            raise TaskFailure(
                f"there is no run {payload.run_id} of experiment {payload.experiment_id}"
            )
        if run.status == RunStatus.SUCCEEDED and run.model_version is not None:
            # Delivered again after it finished (a worker lost before its ack).
            done = registry.version(experiment.model_name, run.model_version)
            if done is not None:
                return _summary(experiment, payload.run_id, done)
        registry.update_run(
            run.id, status=RunStatus.RUNNING, started_at=datetime.now(UTC), task_id=task_id
        )
        session.expunge(experiment)
    try:
        if inputs is None:
            inputs = load_inputs(rt, tenant, experiment, payload.options, payload.seed)
        task = MLTask(experiment.task)
        fitted = _train_confined(rt, task, inputs, report)
        summary = _register(rt, tenant, experiment, payload, inputs, fitted, task_id, events)
    except TaskFailure as exc:
        _fail(rt, tenant, payload.run_id, str(exc))
        raise
    except (DatasetError, IntegrityError, ValueError) as exc:
        _fail(rt, tenant, payload.run_id, str(exc))
        raise TaskFailure(str(exc)) from exc
    except BaseException as exc:
        _fail(rt, tenant, payload.run_id, f"{type(exc).__name__}: {exc}")
        raise
    return summary


def _train_confined(
    rt: MLRuntime, task: MLTask, inputs: TrainingInputs, report: ProgressReporter
) -> _Trained:
    """Train in a child process that keeps to the run's time budget and memory cap.

    The trainers stop at the budget by themselves; a grace period later the
    child interrupts what still runs (falling back to a smaller model where
    there is one), and a second grace period later the worker kills it.
    """
    budget = inputs.spec.time_budget_seconds
    grace = grace_seconds(budget)
    sample_rows = rt.settings.drift_reference_rows

    def work(child_report: ProgressReporter) -> tuple[dict[str, Any], bytes]:
        with hard_stop(budget + grace):
            fitted = train_fitted(task, inputs.frame, inputs.spec, child_report)
        summary = {
            "estimator": fitted.estimator,
            "params": json_safe(fitted.params),
            "metrics": json_safe(fitted.metrics),
            "fit_seconds": fitted.fit_seconds,
            "leaderboard": [t.as_json() for t in fitted.leaderboard[:_LEADERBOARD_KEPT]],
            "details": json_safe(fitted.details),
            # Here, where the model is still in memory, rather than loaded again.
            "reference": _reference(task, inputs, fitted, sample_rows),
        }
        return summary, dump_model(fitted.model)

    summary, model = run_in_child(
        work,
        budget_seconds=budget,
        kill_after_seconds=budget + 2 * grace,
        memory_mb=rt.settings.ml_task_memory_mb,
        report=report,
    )
    return _Trained(model=model, **summary)


def _reference(
    task: MLTask, inputs: TrainingInputs, fitted: Fitted, sample_rows: int
) -> dict[str, Any]:
    """The drift reference of what was just fitted: its inputs' profile and its predictions'."""
    if task == MLTask.FORECASTING and inputs.spec.target is not None:
        # A forecaster takes no input columns and forecasts past the data it
        # saw, so there are no predictions on training rows: the reference is
        # the target series itself, which later observations are compared with.
        columns = [{"name": inputs.spec.target, "kind": ColumnKind.NUMERIC.value}]
        predict = None
    else:
        columns, predict = inputs.signature, fitted.model.predict_rows
    reference = build_reference(
        inputs.frame, columns, task, predict, sample_rows=sample_rows, seed=inputs.spec.seed
    )
    return {"profile": reference.profile.as_json(), "sample": reference.sample.as_json()}


def load_inputs(
    rt: MLRuntime,
    tenant: str,
    experiment: Experiment,
    run_options: Mapping[str, Any],
    seed: int,
) -> TrainingInputs:
    """The rows and spec a run of ``experiment`` trains on, its options checked.

    ``run_options`` go over the experiment's; their ``dataset_id`` names the
    data (by default the experiment's dataset). DatasetError or ValueError
    (OptionsError) for data or options the experiment cannot train on.
    """
    task = MLTask(experiment.task)
    # Checked again, as the API did: what is stored may predate a lower bound,
    # or may not have come through the API at all.
    check_budget(experiment.time_budget_seconds, rt.settings.ml_max_time_budget_seconds)
    options = check_options(
        task,
        {k: v for k, v in {**experiment.options, **run_options}.items() if k != "dataset_id"},
        OptionLimits.from_settings(rt.settings),
    )
    dataset_id = str(run_options.get("dataset_id") or experiment.dataset_id)
    with rt.sessions() as session:
        dataset = DatasetRepository(session, tenant).get(dataset_id)
    if dataset is None:
        raise DatasetError(f"there is no dataset {dataset_id}")
    features = check_experiment(
        task, dataset.columns, dataset.rows, experiment.target, experiment.features
    )
    kinds = {str(c["name"]): ColumnKind(c["kind"]) for c in dataset.columns}
    frame = frame_from_csv(rt.artifacts.get(dataset.artifact_key, dataset.sha256), kinds)
    target = experiment.target
    if target is not None and task in (MLTask.CLASSIFICATION, MLTask.TEXT_CLASSIFICATION):
        labelled = frame[target].notna()
        frame = frame.loc[labelled].copy()
        frame[target] = classification_labels(frame[target])
    spec = TrainingSpec(
        target=target,
        features=features,
        kinds={c: kinds[c] for c in [*features, *([target] if target else [])]},
        time_budget_seconds=experiment.time_budget_seconds,
        metric=experiment.metric,
        seed=seed,
        options=options,
    )
    # Forecasting models take a number of steps, not input columns.
    signature = (
        []
        if task == MLTask.FORECASTING
        else [{"name": c, "kind": kinds[c].value} for c in features]
    )
    return TrainingInputs(frame, spec, signature, dataset_id)


def _register(
    rt: MLRuntime,
    tenant: str,
    experiment: Experiment,
    payload: TrainPayload,
    inputs: TrainingInputs,
    fitted: _Trained,
    task_id: str | None,
    events: ModelEvents,
) -> dict[str, Any]:
    blob = fitted.model
    key = f"{tenant}/models/{experiment.id}/{payload.run_id}.pkl"
    digest = rt.artifacts.put(key, blob)
    # Signed as stored: a worker loads only files whose row carries this.
    mac = rt.signer.sign(tenant, key, digest)
    leaderboard = fitted.leaderboard
    profile = ReferenceProfile.from_json(fitted.reference["profile"])
    sample = put_sample(
        rt.artifacts,
        rt.signer,
        tenant,
        sample_key(tenant, experiment.id, payload.run_id),
        ReferenceSample.from_json(fitted.reference["sample"], profile),
    )
    version_id = str(uuid.uuid4())
    with rt.sessions.begin() as session:
        registry = ModelRegistry(session, tenant, events)
        run = registry.run(payload.run_id)
        version = registry.register(
            ModelVersion(
                id=version_id,
                tenant_id=tenant,
                model_name=experiment.model_name,
                experiment_id=experiment.id,
                run_id=payload.run_id,
                task=experiment.task,
                estimator=fitted.estimator,
                params=json_safe(fitted.params),
                metrics=json_safe(fitted.metrics),
                leaderboard=leaderboard,
                details=json_safe({**fitted.details, "fit_seconds": fitted.fit_seconds}),
                dataset_id=inputs.dataset_id,
                training_task_id=task_id,
                target=experiment.target,
                signature=inputs.signature,
                artifact_key=key,
                artifact_sha256=digest,
                artifact_mac=mac,
                size_bytes=len(blob),
                trained_by=run.created_by if run else None,
                created_at=datetime.now(UTC),
            )
        )
        if version.id == version_id:
            # Not when the run had registered its version already: that one has its reference.
            add_reference(session, tenant, version.id, profile, sample)
        registry.update_run(
            payload.run_id,
            status=RunStatus.SUCCEEDED,
            model_version=version.version,
            finished_at=datetime.now(UTC),
            error=None,
        )
    return _summary(experiment, payload.run_id, version)


def _summary(experiment: Experiment, run_id: str, version: ModelVersion) -> dict[str, Any]:
    return {
        "experiment_id": experiment.id,
        "run_id": run_id,
        "model": experiment.model_name,
        "version": version.version,
        "estimator": version.estimator,
        "metrics": version.metrics,
        "trials": len(version.leaderboard),
        "leaderboard": version.leaderboard[:10],
        "links": {"version": f"/v1/ml/models/{experiment.model_name}/versions/{version.version}"},
    }


def _fail(rt: MLRuntime, tenant: str, run_id: str, message: str) -> None:
    with rt.sessions.begin() as session:
        ModelRegistry(session, tenant).update_run(
            run_id, status=RunStatus.FAILED, error=message[:2000], finished_at=datetime.now(UTC)
        )
