"""Response models of the ML routes (shared ones: ``aia_api.http.responses``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from aia_api.http.responses import Closed, PageLinks, SelfLinks
from aia_api.tasks.responses import TaskView
from aia_workers.ml.contracts.payloads import MLTask, RetrainTrigger
from aia_workers.ml.contracts.retraining import Decision

__all__ = [
    "AliasMoved",
    "DatasetColumn",
    "DatasetLinks",
    "DatasetPage",
    "DatasetView",
    "ExperimentPage",
    "ExperimentView",
    "FeedbackResult",
    "ModelDetail",
    "ModelPage",
    "PredictionPage",
    "RetrainDecision",
    "RunAccepted",
    "RunPage",
    "RunView",
    "VersionView",
]


class ExperimentView(Closed):
    id: str
    name: str
    model_name: str = Field(description="Versions are registered under this name.")
    task: MLTask
    dataset_id: str
    target: str | None
    features: list[str] = Field(description="Empty: every column the task can use.")
    time_budget_seconds: float
    metric: str | None
    options: dict[str, Any]
    latest_version: int | None
    created_by: str | None
    created_at: datetime
    links: SelfLinks


class ExperimentPage(Closed):
    items: list[ExperimentView]
    next_cursor: str | None
    links: PageLinks


class RunView(Closed):
    id: str
    experiment_id: str
    task_id: str | None = Field(description="The `ml.train` task doing the work.")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    options: dict[str, Any]
    model_version: int | None = Field(description="The version it registered, once succeeded.")
    error: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: SelfLinks


class RunAccepted(RunView):
    task: TaskView = Field(description="The queued task; follow links.events for progress.")


class RunPage(Closed):
    items: list[RunView]
    next_cursor: str | None
    links: PageLinks


class _VersionSummary(Closed):
    version: int
    estimator: str
    metrics: dict[str, Any]
    created_at: datetime
    links: SelfLinks


class _Scored(Closed):
    version: int | None = Field(description="None when no version held the alias.")
    score: float | None = Field(
        description="On the holdout, in the metric's units; None if it could not be computed."
    )


class RetrainDecision(Closed):
    """Why a retrain moved an alias, or kept it where it was."""

    trigger: RetrainTrigger
    report_id: str | None = Field(description="The drift report that triggered it.")
    metric: str = Field(description="The experiment's metric, both models scored by it.")
    champion: _Scored = Field(description="The version the alias pointed at.")
    challenger: _Scored = Field(description="The version the retrain trained.")
    margin: float = Field(description="How much better the challenger had to score.")
    holdout_rows: int
    decision: Decision = Field(
        description="promoted (the alias moved), kept (it did not), or no_champion (the "
        "alias pointed nowhere; the challenger took it)."
    )
    dataset_id: str = Field(description="The data both were scored on a holdout of.")
    seed: int = Field(description="Seeded the holdout split and the training.")


class _AliasChange(Closed):
    id: str
    alias: str
    from_version: int | None = Field(description="Equal to to_version for a kept decision.")
    to_version: int | None = Field(description="None when the alias was removed.")
    changed_by: str | None
    reason: str | None
    details: RetrainDecision | None = Field(
        description="A retrain's decision; None for a move by hand."
    )
    created_at: datetime


class _ModelSummary(Closed):
    name: str
    task: MLTask
    experiment_id: str
    latest_version: int
    aliases: dict[str, int] = Field(description="Alias to version.")
    links: SelfLinks


class ModelPage(Closed):
    items: list[_ModelSummary]
    next_cursor: str | None
    links: PageLinks


class ModelDetail(Closed):
    name: str
    task: MLTask
    experiment_id: str
    latest_version: int | None
    aliases: dict[str, int]
    versions: list[_VersionSummary] = Field(description="Newest first.")
    alias_history: list[_AliasChange] = Field(
        description="Every alias move, and every retrain's decision, newest first."
    )
    links: SelfLinks


class _Artifact(Closed):
    path: str = Field(description="The key in the artifact store.")
    sha256: str = Field(description="Checked before every load.")
    size_bytes: int


class VersionView(Closed):
    model_name: str
    version: int
    task: MLTask
    estimator: str
    params: dict[str, Any]
    metrics: dict[str, Any] = Field(description="Holdout (or backtest) metrics.")
    leaderboard: list[dict[str, Any]] = Field(
        description="Every trial of the search: estimator, params, score, fit_seconds."
    )
    details: dict[str, Any]
    signature: list[dict[str, Any]] = Field(description="Input columns: name and kind.")
    target: str | None
    dataset_id: str
    experiment_id: str
    run_id: str
    training_task_id: str | None
    artifact: _Artifact
    aliases: list[str]
    trained_by: str | None
    created_at: datetime
    links: SelfLinks


class AliasMoved(Closed):
    alias: str
    version: int
    updated_by: str | None
    updated_at: datetime
    change: _AliasChange


class _Prediction(Closed):
    id: str
    version: int
    task_id: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    created_at: datetime
    label: Any = Field(description="The true label fed back for it; null until then.")
    labelled_at: datetime | None


class FeedbackResult(Closed):
    labelled: int = Field(description="Predictions labelled (or labelled again).")
    unknown: list[str] = Field(
        description="Ids with no logged prediction of this model: never sampled into the "
        "log, trimmed from it since, or not this tenant's."
    )


class PredictionPage(Closed):
    """The latest logged (sampled) predictions, newest first."""

    items: list[_Prediction]


class DatasetColumn(Closed):
    name: str
    kind: Literal["numeric", "categorical", "boolean", "datetime", "text"]
    missing: int = Field(description="Cells with no value (empty, NA, null, ...).")
    distinct: int


class DatasetLinks(Closed):
    self_: str = Field(alias="self")


class DatasetView(Closed):
    id: str
    name: str
    rows: int
    columns: list[DatasetColumn]
    size_bytes: int
    sha256: str
    created_at: datetime
    links: DatasetLinks


class DatasetPage(Closed):
    """One page of the tenant's datasets, newest first."""

    items: list[DatasetView]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")
    links: PageLinks
