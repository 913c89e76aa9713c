"""JSON views of experiments, runs, model versions and aliases, as the routes return them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aia_workers.backbone.view import iso_time
from aia_workers.db.ml import (
    AliasChange,
    Experiment,
    ModelAlias,
    ModelVersion,
    PredictionLog,
    TrainingRun,
)

__all__ = [
    "alias_change_view",
    "alias_view",
    "experiment_view",
    "model_view",
    "prediction_view",
    "run_view",
    "version_summary",
    "version_view",
]


def experiment_view(experiment: Experiment) -> dict[str, Any]:
    base = f"/v1/ml/experiments/{experiment.id}"
    return {
        "id": experiment.id,
        "name": experiment.name,
        "model_name": experiment.model_name,
        "task": experiment.task,
        "dataset_id": experiment.dataset_id,
        "target": experiment.target,
        "features": experiment.features,
        "time_budget_seconds": experiment.time_budget_seconds,
        "metric": experiment.metric,
        "options": experiment.options,
        "latest_version": experiment.latest_version or None,
        "created_by": experiment.created_by,
        "created_at": experiment.created_at.isoformat(),
        "links": {
            "self": base,
            "runs": f"{base}/runs",
            "model": f"/v1/ml/models/{experiment.model_name}",
        },
    }


def run_view(run: TrainingRun, model_name: str) -> dict[str, Any]:
    links: dict[str, str] = {"self": f"/v1/ml/experiments/{run.experiment_id}/runs/{run.id}"}
    if run.task_id:
        links["task"] = f"/v1/tasks/{run.task_id}"
        links["events"] = f"/v1/tasks/{run.task_id}/events"
    if run.model_version is not None:
        links["version"] = f"/v1/ml/models/{model_name}/versions/{run.model_version}"
    return {
        "id": run.id,
        "experiment_id": run.experiment_id,
        "task_id": run.task_id,
        "status": run.status,
        "options": run.options,
        "model_version": run.model_version,
        "error": run.error,
        "created_by": run.created_by,
        "created_at": run.created_at.isoformat(),
        "started_at": iso_time(run.started_at),
        "finished_at": iso_time(run.finished_at),
        "links": links,
    }


def version_summary(version: ModelVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "estimator": version.estimator,
        "metrics": version.metrics,
        "created_at": version.created_at.isoformat(),
        "links": {"self": f"/v1/ml/models/{version.model_name}/versions/{version.version}"},
    }


def version_view(version: ModelVersion, aliases: Sequence[str]) -> dict[str, Any]:
    return {
        "model_name": version.model_name,
        "version": version.version,
        "task": version.task,
        "estimator": version.estimator,
        "params": version.params,
        "metrics": version.metrics,
        "leaderboard": version.leaderboard,
        "details": version.details,
        "signature": version.signature,
        "target": version.target,
        "dataset_id": version.dataset_id,
        "experiment_id": version.experiment_id,
        "run_id": version.run_id,
        "training_task_id": version.training_task_id,
        "artifact": {
            "path": version.artifact_key,
            "sha256": version.artifact_sha256,
            "size_bytes": version.size_bytes,
        },
        "aliases": list(aliases),
        "trained_by": version.trained_by,
        "created_at": version.created_at.isoformat(),
        "links": {
            "self": f"/v1/ml/models/{version.model_name}/versions/{version.version}",
            "model": f"/v1/ml/models/{version.model_name}",
        },
    }


def alias_view(alias: ModelAlias) -> dict[str, Any]:
    return {
        "alias": alias.alias,
        "version": alias.version,
        "updated_by": alias.updated_by,
        "updated_at": alias.updated_at.isoformat(),
    }


def alias_change_view(change: AliasChange) -> dict[str, Any]:
    return {
        "id": change.id,
        "alias": change.alias,
        "from_version": change.from_version,
        "to_version": change.to_version,
        "changed_by": change.changed_by,
        "reason": change.reason,
        "details": change.details,
        "created_at": change.created_at.isoformat(),
    }


def model_view(
    experiment: Experiment,
    versions: Sequence[ModelVersion],
    aliases: Sequence[ModelAlias],
    history: Sequence[AliasChange],
) -> dict[str, Any]:
    return {
        "name": experiment.model_name,
        "task": experiment.task,
        "experiment_id": experiment.id,
        "latest_version": experiment.latest_version or None,
        "aliases": {a.alias: a.version for a in aliases},
        "versions": [version_summary(v) for v in versions],
        "alias_history": [alias_change_view(c) for c in history],
        "links": {
            "self": f"/v1/ml/models/{experiment.model_name}",
            "experiment": f"/v1/ml/experiments/{experiment.id}",
            "predict": f"/v1/ml/models/{experiment.model_name}/predict",
        },
    }


def prediction_view(entry: PredictionLog) -> dict[str, Any]:
    return {
        "id": entry.id,
        "version": entry.version,
        "task_id": entry.task_id,
        "inputs": entry.inputs,
        "outputs": entry.outputs,
        "created_at": entry.created_at.isoformat(),
        "label": entry.label,
        "labelled_at": entry.labelled_at.isoformat() if entry.labelled_at else None,
    }
