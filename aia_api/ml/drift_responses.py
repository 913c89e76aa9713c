"""Response models of the drift routes, and the views that fill them from stored rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from aia_api.http.responses import Closed, PageLinks, SelfLinks
from aia_workers.db.drift import DriftReport
from aia_workers.drift.contracts.checks import FeatureKind, StatTest
from aia_workers.drift.contracts.payloads import RetrainOn, RetrainTrigger
from aia_workers.drift.policies import Policy

__all__ = [
    "DriftPolicyView",
    "DriftReportDetail",
    "DriftReportPage",
    "policy_view",
    "report_detail",
    "report_summary",
]


class _Window(Closed):
    kind: Literal["predictions", "dataset"]
    rows: int = Field(description="Current rows checked.")
    since: datetime | None = Field(default=None, description="Logged predictions from here on.")
    until: datetime | None = Field(default=None, description="Logged predictions before this.")
    dataset_id: str | None = None


class _FeatureResult(Closed):
    feature: str
    kind: FeatureKind
    test: StatTest
    statistic: float | None = Field(
        description="The test's statistic, or the distance for wasserstein, jensenshannon, psi."
    )
    p_value: float | None = Field(description="Null for the distances.")
    threshold: float
    drifted: bool = Field(
        description="p_value < threshold for ks and chisquare; statistic >= threshold otherwise."
    )
    psi: float | None = Field(description="The population stability index, for every feature.")
    reference_count: int
    current_count: int
    reference_missing: int
    current_missing: int


class _Verdict(Closed):
    drifted: bool = Field(description="drifted_share >= drift_share.")
    drift_share: float = Field(description="The share of drifted features that is drift.")
    drifted_share: float
    drifted_count: int
    feature_count: int
    features: list[_FeatureResult]


class _Retrain(Closed):
    trigger: RetrainTrigger
    retrain_on: RetrainOn
    alias: str
    margin: float
    task_id: str | None = Field(description="The `ml.retrain` task, once submitted.")
    error: str | None = Field(description="Why no retrain could be submitted.")


class _ReportSummary(Closed):
    id: str
    model: str
    version: int
    task_id: str = Field(description="The `drift.check` task that made it.")
    window: _Window
    drifted: bool = Field(description="The dataset verdict on the features.")
    drifted_share: float
    drift_share: float
    drifted_features: list[str]
    prediction_drifted: bool | None = Field(description="Null when outputs were not compared.")
    retrain: _Retrain | None = Field(description="What the drift policy decided; null: nothing.")
    created_at: datetime
    links: SelfLinks


class DriftReportPage(Closed):
    items: list[_ReportSummary] = Field(description="Newest first.")
    next_cursor: str | None
    links: PageLinks


class DriftReportDetail(_ReportSummary):
    features: _Verdict = Field(description="Per feature, in the model's signature order.")
    predictions: _Verdict | None = Field(description="The model's outputs, checked alike.")
    performance: dict[str, Any] | None = Field(
        description="The metric on labelled feedback against the training metric; null until "
        "measured."
    )


class DriftPolicyView(Closed):
    model: str
    retrain_on: RetrainOn
    alias: str
    margin: float
    updated_by: str | None
    updated_at: datetime | None = Field(description="Null: never set, so the default applies.")
    links: SelfLinks


def report_summary(report: DriftReport) -> dict[str, Any]:
    base = f"/v1/ml/models/{report.model_name}/drift/{report.id}"
    predictions = report.predictions
    return {
        "id": report.id,
        "model": report.model_name,
        "version": report.version,
        "task_id": report.task_id,
        "window": report.window,
        "drifted": report.drifted,
        "drifted_share": report.drifted_share,
        "drift_share": report.drift_share,
        "drifted_features": [f["feature"] for f in report.features["features"] if f["drifted"]],
        "prediction_drifted": None if predictions is None else bool(predictions["drifted"]),
        "retrain": report.retrain,
        "created_at": report.created_at.isoformat(),
        "links": {
            "self": base,
            "task": f"/v1/tasks/{report.task_id}",
            "version": f"/v1/ml/models/{report.model_name}/versions/{report.version}",
        },
    }


def report_detail(report: DriftReport) -> dict[str, Any]:
    return {
        **report_summary(report),
        "features": report.features,
        "predictions": report.predictions,
        "performance": report.performance,
    }


def policy_view(model: str, policy: Policy) -> dict[str, Any]:
    return {
        "model": model,
        **policy.as_dict(),
        "links": {"self": f"/v1/ml/models/{model}/drift/policy"},
    }
