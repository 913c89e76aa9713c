"""Champion and challenger: retrain a model on its current data, promote only a better one.

Free of Celery: ``ml.retrain`` calls ``retrain`` with the process's runtime.

The current data (the experiment's dataset, or another with the same columns)
is split once, seeded: a holdout neither model trains on, and the rest, which
a challenger is trained on through the ordinary training path (``train_run``),
so it registers as a normal version with its drift reference and signed file.
Both models are then loaded as they are served and scored on the holdout with
the experiment's metric; the alias moves only for a challenger better by the
margin. Every decision, a kept alias too, is a row of the alias history.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy.exc
from sklearn.model_selection import train_test_split

from aia_workers.backbone.progress import ProgressReporter, discard_progress
from aia_workers.db.ml import AliasChange, Experiment, ModelVersion, TrainingRun
from aia_workers.errors import TaskFailure, TransientError
from aia_workers.ml.artifacts import IntegrityError, ModelFile
from aia_workers.ml.contracts.payloads import MLTask, RetrainPayload, TrainPayload
from aia_workers.ml.contracts.retraining import (
    Decision,
    check_current_data,
    check_retrainable,
    decide,
    retrain_metric,
)
from aia_workers.ml.contracts.tables import DatasetError
from aia_workers.ml.datasets import DatasetRepository
from aia_workers.ml.registry import ModelEvents, ModelRegistry, RunStatus
from aia_workers.ml.runtime import MLRuntime
from aia_workers.ml.scoring import served_score
from aia_workers.ml.training import load_inputs, train_run

__all__ = ["MIN_HOLDOUT_ROWS", "retrain", "split_holdout"]

# Fewer held-out rows than this say little about which model is better.
MIN_HOLDOUT_ROWS = 5


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    experiment: Experiment
    task: MLTask
    metric: str
    dataset_id: str
    seed: int
    run_id: str
    actor: str


def retrain(
    rt: MLRuntime,
    tenant: str,
    payload: RetrainPayload,
    *,
    task_id: str | None,
    events: ModelEvents,
    report: ProgressReporter = discard_progress,
) -> dict[str, Any]:
    """Train a challenger, score it and the champion on one holdout, decide; the decision back.

    The decision ("promoted", "kept" or "no_champion") is recorded in the
    alias history with both scores; a promotion moves the alias and is
    announced (``model.alias_changed``) through ``events``. Safe to run twice
    for one ``task_id``: the run, the version and the decision are found again.

    TaskFailure for a model, data or options a person must fix; TransientError
    when the alias moved while the models were scored (scored again on retry).
    """
    plan = _plan(rt, tenant, payload, task_id)
    try:
        inputs = load_inputs(rt, tenant, plan.experiment, _run_options(payload), plan.seed)
        training, holdout = split_holdout(
            inputs.frame, plan.task, plan.experiment.target, payload.holdout_fraction, plan.seed
        )
    except (DatasetError, ValueError) as exc:
        raise TaskFailure(str(exc)) from exc
    _open_run(rt, tenant, plan, payload)
    summary = train_run(
        rt,
        tenant,
        TrainPayload(
            experiment_id=plan.experiment.id,
            run_id=plan.run_id,
            seed=plan.seed,
            options=_run_options(payload),
        ),
        task_id=task_id,
        events=events,
        report=report,
        inputs=dataclasses.replace(inputs, frame=training),
    )
    challenger_number = int(summary["version"])
    with rt.sessions() as session:
        registry = ModelRegistry(session, tenant)
        done = _decided(registry, payload, challenger_number)
        if done is not None:
            # Delivered again after it decided (a worker lost before its ack).
            return _result(plan, payload, done)
        pointer = registry.alias(payload.model, payload.alias)
        champion = registry.version(payload.model, pointer.version) if pointer else None
        challenger = registry.version(payload.model, challenger_number)
    if challenger is None:
        raise TaskFailure(f"model {payload.model!r} has no version {challenger_number}")
    truth = holdout[str(plan.experiment.target)]
    try:
        challenger_score = _score(rt, tenant, challenger, plan.metric, holdout, truth)
        champion_score = (
            _score(rt, tenant, champion, plan.metric, holdout, truth) if champion else None
        )
    except (DatasetError, IntegrityError, ValueError) as exc:
        raise TaskFailure(f"the models could not be scored on the holdout: {exc}") from exc
    details = {
        "trigger": payload.trigger,
        "report_id": payload.report_id,
        "metric": plan.metric,
        "champion": {
            "version": champion.version if champion else None,
            "score": _json_score(champion_score),
        },
        "challenger": {"version": challenger_number, "score": _json_score(challenger_score)},
        "margin": payload.margin,
        "holdout_rows": len(holdout),
        "decision": decide(plan.metric, champion_score, challenger_score, payload.margin),
        "dataset_id": plan.dataset_id,
        "seed": plan.seed,
    }
    change = _record(rt, tenant, payload, plan, champion, details, events)
    return _result(plan, payload, change)


def split_holdout(
    frame: pd.DataFrame, task: MLTask, target: str | None, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled rows of ``frame`` split, seeded, into (training, holdout).

    Stratified by the target for classifiers when every class has two rows or
    more and both parts can hold every class. DatasetError when the holdout
    would have fewer than ``MIN_HOLDOUT_ROWS`` rows.
    """
    if target is None or target not in frame.columns:
        raise DatasetError(f"there is no target column {target!r} to score models by")
    labelled = frame.loc[frame[target].notna()]
    size = math.ceil(fraction * len(labelled))
    if size < MIN_HOLDOUT_ROWS or len(labelled) - size < MIN_HOLDOUT_ROWS:
        raise DatasetError(
            f"{len(labelled)} labelled rows leave {size} for the holdout at a fraction of "
            f"{fraction}; both parts need at least {MIN_HOLDOUT_ROWS}: use more data "
            "or another holdout_fraction",
            column=target,
        )
    stratify = None
    if task in (MLTask.CLASSIFICATION, MLTask.TEXT_CLASSIFICATION):
        counts = labelled[target].value_counts()
        if counts.min() >= 2 and min(size, len(labelled) - size) >= len(counts):
            stratify = labelled[target]
    training, holdout = train_test_split(
        labelled, test_size=size, random_state=seed, stratify=stratify
    )
    return training, holdout


def _plan(rt: MLRuntime, tenant: str, payload: RetrainPayload, task_id: str | None) -> _Plan:
    """The experiment and the choices of this retrain, checked before anything is trained."""
    with rt.sessions() as session:
        registry = ModelRegistry(session, tenant)
        experiment = registry.experiment_for_model(payload.model)
        if experiment is None:
            raise TaskFailure(f"there is no model {payload.model!r}")
        task = MLTask(experiment.task)
        pointer = registry.alias(payload.model, payload.alias)
        champion = registry.version(payload.model, pointer.version) if pointer else None
        dataset_id = payload.dataset_id or experiment.dataset_id
        dataset = DatasetRepository(session, tenant).get(dataset_id)
        session.expunge(experiment)
    try:
        check_retrainable(task)
        metric = retrain_metric(task, experiment.metric)
        if dataset is None:
            raise DatasetError(f"there is no dataset {dataset_id}")
        check_current_data(
            payload.model,
            dataset_id,
            dataset.columns,
            experiment.target,
            experiment.features or [],
            champion.signature if champion else None,
        )
    except DatasetError as exc:
        raise TaskFailure(str(exc)) from exc
    return _Plan(
        experiment=experiment,
        task=task,
        metric=metric,
        dataset_id=dataset_id,
        seed=payload.seed if payload.seed is not None else _seed(task_id),
        run_id=_run_id(tenant, task_id),
        actor=f"task:{task_id}" if task_id else "retrain",
    )


def _seed(task_id: str | None) -> int:
    # From the task id, so a delivery of the same task again splits the same holdout.
    if task_id is None:
        return random.randrange(2**31)
    return int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:4], "big") % 2**31


def _run_id(tenant: str, task_id: str | None) -> str:
    # From the task id, so a delivery of the same task again finds its run (and version).
    if task_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"aia:{tenant}:ml.retrain:{task_id}"))


def _run_options(payload: RetrainPayload) -> dict[str, Any]:
    return {"dataset_id": payload.dataset_id} if payload.dataset_id else {}


def _open_run(rt: MLRuntime, tenant: str, plan: _Plan, payload: RetrainPayload) -> None:
    with rt.sessions.begin() as session:
        registry = ModelRegistry(session, tenant)
        if registry.run(plan.run_id) is None:
            registry.add_run(
                TrainingRun(
                    id=plan.run_id,
                    tenant_id=tenant,
                    experiment_id=plan.experiment.id,
                    task_id=None,
                    status=RunStatus.QUEUED,
                    options=_run_options(payload),
                    created_by=plan.actor,
                    created_at=datetime.now(UTC),
                )
            )


def _score(
    rt: MLRuntime,
    tenant: str,
    version: ModelVersion,
    metric: str,
    holdout: pd.DataFrame,
    truth: pd.Series,
) -> float:
    """``version`` loaded as served (its signature checked) and scored on ``holdout``."""
    model, _ = rt.models.get(
        ModelFile(tenant, version.artifact_key, version.artifact_sha256, version.artifact_mac)
    )
    return served_score(metric, truth, model.predict_rows(holdout))


def _json_score(score: float | None) -> float | None:
    return None if score is None or math.isnan(score) else score


def _decided(
    registry: ModelRegistry, payload: RetrainPayload, challenger: int
) -> AliasChange | None:
    """The decision already recorded about ``challenger``, if there is one."""
    for change in registry.alias_history(payload.model, payload.alias):
        details = change.details or {}
        if (details.get("challenger") or {}).get("version") == challenger:
            return change
    return None


def _record(
    rt: MLRuntime,
    tenant: str,
    payload: RetrainPayload,
    plan: _Plan,
    champion: ModelVersion | None,
    details: dict[str, Any],
    events: ModelEvents,
) -> AliasChange:
    decision: Decision = details["decision"]
    reason = _reason(payload, details)
    moved = TransientError(
        f"the alias {payload.alias!r} of model {payload.model!r} moved while the retrain "
        "scored its champion"
    )
    try:
        with rt.sessions.begin() as session:
            registry = ModelRegistry(session, tenant, events)
            # Locked, so a retrain deciding at the same moment waits and then sees this move.
            pointer = registry.alias(payload.model, payload.alias, lock=True)
            now_at = pointer.version if pointer else None
            if now_at != (champion.version if champion else None):
                # The verdict is about a model that no longer holds the alias;
                # the retry scores the one that does.
                raise moved
            if decision == "kept":
                return registry.keep_alias(
                    payload.model, payload.alias, actor=plan.actor, reason=reason, details=details
                )
            return registry.move_alias(
                payload.model,
                payload.alias,
                details["challenger"]["version"],
                actor=plan.actor,
                reason=reason,
                details=details,
            )
    except sqlalchemy.exc.IntegrityError as exc:
        # Another retrain gave the alias its first version in the meantime.
        raise moved from exc


def _reason(payload: RetrainPayload, details: dict[str, Any]) -> str:
    champion, challenger = details["champion"], details["challenger"]
    metric = details["metric"]
    said = f"retrain ({payload.trigger}): challenger v{challenger['version']} {metric} " + (
        _shown(challenger["score"])
    )
    if champion["version"] is None:
        return f"{said}; no champion held {payload.alias!r}"
    verdict = "promoted" if details["decision"] == "promoted" else "kept the champion"
    return (
        f"{said} against champion v{champion['version']} {_shown(champion['score'])} "
        f"(margin {payload.margin:g}): {verdict}"
    )


def _shown(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.4g}"


def _result(plan: _Plan, payload: RetrainPayload, change: AliasChange) -> dict[str, Any]:
    details = dict(change.details or {})
    name = payload.model
    challenger = details["challenger"]["version"]
    return {
        "model": name,
        "alias": payload.alias,
        "decision": details["decision"],
        "version": change.to_version,
        "run_id": plan.run_id,
        "experiment_id": plan.experiment.id,
        "details": details,
        "links": {
            "model": f"/v1/ml/models/{name}",
            "challenger": f"/v1/ml/models/{name}/versions/{challenger}",
        },
    }
