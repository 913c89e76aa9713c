"""A drift check of one model version, from payload to stored report and retrain decision.

No Celery here: ``aia_workers.drift.tasks`` calls ``check_drift``, then submits
the retrain the outcome asks for, since submitting is the adapter's business.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy.exc
from sqlalchemy.orm import Session

from aia_workers.db.drift import DriftReport
from aia_workers.db.ml import ModelVersion
from aia_workers.drift.check import check_dataset
from aia_workers.drift.contracts.checks import DriftConfig, FeatureKind
from aia_workers.drift.contracts.payloads import DriftCheckPayload
from aia_workers.drift.errors import DriftInputError
from aia_workers.drift.performance import measure_performance
from aia_workers.drift.policies import PolicyRepository, retrain_decision
from aia_workers.drift.profile import ReferenceProfile, ReferenceSample
from aia_workers.drift.references import load_reference
from aia_workers.drift.reports import ReportRepository
from aia_workers.drift.results import DatasetDrift
from aia_workers.drift.window import CurrentWindow, from_dataset, from_prediction_log
from aia_workers.errors import NotFoundError, TaskFailure
from aia_workers.ml.artifacts import IntegrityError, ModelFile
from aia_workers.ml.datasets import DatasetRepository
from aia_workers.ml.registry import ModelEvents, ModelRegistry
from aia_workers.ml.runtime import MLRuntime

__all__ = ["CheckOutcome", "check_drift", "outcome_of"]


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """A stored report's verdict, and the retrain its model's policy asks for (if any)."""

    report_id: str
    tenant: str
    model: str
    version: int
    drifted: bool
    drifted_share: float
    drift_share: float
    drifted_features: list[str]
    prediction_drifted: bool | None
    # The metric on labelled feedback against training's, when measured.
    performance: dict[str, Any] | None
    window: dict[str, Any]
    retrain: dict[str, Any] | None
    created_at: datetime
    # True when the report was stored by an earlier delivery of the same task.
    replayed: bool = False

    def retrain_payload(self) -> dict[str, Any] | None:
        """The ``ml.retrain`` payload to submit, or None (no decision, or submitted already)."""
        if self.retrain is None or self.retrain.get("task_id"):
            return None
        return {
            "model": self.model,
            "alias": self.retrain["alias"],
            "margin": self.retrain["margin"],
            "trigger": self.retrain["trigger"],
            "report_id": self.report_id,
        }

    def result(self) -> dict[str, Any]:
        """What the task returns: JSON, with a link to the report."""
        return {
            "report_id": self.report_id,
            "model": self.model,
            "version": self.version,
            "drifted": self.drifted,
            "drifted_share": self.drifted_share,
            "drift_share": self.drift_share,
            "drifted_features": self.drifted_features,
            "prediction_drifted": self.prediction_drifted,
            "performance_drifted": (
                None if self.performance is None else bool(self.performance["drifted"])
            ),
            "window": self.window,
            "retrain": self.retrain,
            "links": {"report": f"/v1/ml/models/{self.model}/drift/{self.report_id}"},
        }


def outcome_of(report: DriftReport, *, replayed: bool = False) -> CheckOutcome:
    """The outcome a stored report stands for."""
    predictions = report.predictions
    return CheckOutcome(
        report_id=report.id,
        tenant=report.tenant_id,
        model=report.model_name,
        version=report.version,
        drifted=report.drifted,
        drifted_share=report.drifted_share,
        drift_share=report.drift_share,
        drifted_features=[f["feature"] for f in report.features["features"] if f["drifted"]],
        prediction_drifted=None if predictions is None else bool(predictions["drifted"]),
        performance=report.performance,
        window=dict(report.window),
        retrain=dict(report.retrain) if report.retrain is not None else None,
        created_at=report.created_at,
        replayed=replayed,
    )


def check_drift(
    rt: MLRuntime,
    tenant: str,
    payload: DriftCheckPayload,
    *,
    task_id: str,
    events: ModelEvents,
) -> CheckOutcome:
    """Check the version ``payload`` names against its reference and store the report.

    A task delivered again returns the report its first delivery stored. A
    drifted dataset is announced (``model.drift_detected``) in the transaction
    that stores its report. Raises TaskFailure (``DriftInputError`` among them)
    when the check cannot run: no such model or version, a version trained
    before references were kept, too few current rows, a configuration naming
    what is not checked.
    """
    with rt.sessions() as session:
        stored = ReportRepository(session, tenant).for_task(task_id)
        if stored is not None:
            return outcome_of(stored, replayed=True)
        version = _version(session, tenant, payload)
        profile, sample = _reference(rt, session, tenant, version)
        policy = PolicyRepository(session, tenant).get(payload.model)
        current = _current(rt, session, tenant, payload, version, profile)
    minimum = rt.settings.drift_min_current_rows
    if current.rows < minimum:
        raise DriftInputError(
            f"the window holds {current.rows} rows of model {payload.model!r} version "
            f"{version.version}, fewer than the {minimum} a drift check needs "
            "(AIA_DRIFT_MIN_CURRENT_ROWS); widen it, or check a dataset"
        )
    features, predictions = _check(profile, sample, current, payload.config)
    performance = _performance(rt, tenant, version, payload)
    trigger = retrain_decision(policy, drifted=features.drifted, performance=performance)
    report = DriftReport(
        id=str(uuid.uuid4()),
        tenant_id=tenant,
        model_name=payload.model,
        version=version.version,
        task_id=task_id,
        window=current.window,
        features=features.as_dict(),
        predictions=predictions.as_dict() if predictions is not None else None,
        performance=performance,
        drifted=features.drifted,
        drifted_share=features.drifted_share,
        drift_share=features.drift_share,
        retrain=None
        if trigger is None
        else {
            "trigger": trigger.value,
            "retrain_on": policy.retrain_on.value,
            "alias": policy.alias,
            "margin": policy.margin,
            "task_id": None,
            "error": None,
        },
        created_at=datetime.now(UTC),
    )
    try:
        with rt.sessions.begin() as session:
            ReportRepository(session, tenant).add(report)
            outcome = outcome_of(report)
            if outcome.drifted:
                _announce(session, tenant, outcome, events)
    except sqlalchemy.exc.IntegrityError:
        # Another delivery of this task stored its report first; that one stands.
        with rt.sessions() as session:
            stored = ReportRepository(session, tenant).for_task(task_id)
        if stored is None:
            raise
        return outcome_of(stored, replayed=True)
    return outcome


def _version(session: Session, tenant: str, payload: DriftCheckPayload) -> ModelVersion:
    registry = ModelRegistry(session, tenant)
    if registry.experiment_for_model(payload.model) is None:
        raise TaskFailure(f"there is no model {payload.model!r}")
    try:
        return registry.resolve(payload.model, version=payload.version, alias=payload.alias)
    except NotFoundError as exc:
        raise TaskFailure(str(exc)) from exc


def _reference(
    rt: MLRuntime, session: Session, tenant: str, version: ModelVersion
) -> tuple[ReferenceProfile, ReferenceSample]:
    try:
        return load_reference(session, tenant, version.id, rt.artifacts, rt.signer)
    except NotFoundError:
        raise TaskFailure(
            f"version {version.version} of model {version.model_name!r} has no drift "
            "reference: it was trained before AIA kept one; train it again (a new version "
            "keeps its reference) to check it for drift"
        ) from None
    except IntegrityError as exc:
        raise TaskFailure(str(exc)) from exc


def _current(
    rt: MLRuntime,
    session: Session,
    tenant: str,
    payload: DriftCheckPayload,
    version: ModelVersion,
    profile: ReferenceProfile,
) -> CurrentWindow:
    if payload.dataset_id is None:
        return from_prediction_log(
            session, tenant, version, profile, since=payload.since, until=payload.until
        )
    dataset = DatasetRepository(session, tenant).get(payload.dataset_id)
    if dataset is None:
        raise TaskFailure(f"there is no dataset {payload.dataset_id}")
    try:
        data = rt.artifacts.get(dataset.artifact_key, dataset.sha256)
        model, _ = rt.models.get(
            ModelFile(tenant, version.artifact_key, version.artifact_sha256, version.artifact_mac)
        )
    except IntegrityError as exc:
        raise TaskFailure(str(exc)) from exc
    return from_dataset(dataset, data, version, profile, model.predict_rows)


def _check(
    profile: ReferenceProfile,
    sample: ReferenceSample,
    current: CurrentWindow,
    config: DriftConfig,
) -> tuple[DatasetDrift, DatasetDrift | None]:
    """The features' verdict, and the outputs' (None when there are none to compare).

    A per-feature choice in ``config`` may name a feature or an output column
    (``prediction``, ``probabilities.<class>``).
    """
    feature_kinds = {name: p.scale for name, p in profile.features.items()}
    output_kinds = _comparable_outputs(profile, sample, current)
    unknown = sorted(set(config.features) - set(feature_kinds) - set(profile.predictions))
    if unknown:
        raise DriftInputError(
            f"the configuration names {', '.join(map(repr, unknown))}, which the model "
            f"neither takes nor outputs; its features are {', '.join(feature_kinds) or 'none'}"
            f" and its outputs {', '.join(profile.predictions) or 'none'}"
        )
    features = check_dataset(
        sample.features, current.features, feature_kinds, _only(config, feature_kinds)
    )
    predictions = None
    if output_kinds and current.predictions is not None:
        predictions = check_dataset(
            sample.predictions, current.predictions, output_kinds, _only(config, output_kinds)
        )
    return features, predictions


def _comparable_outputs(
    profile: ReferenceProfile, sample: ReferenceSample, current: CurrentWindow
) -> dict[str, FeatureKind]:
    # An output with no value on one side (a class no current row was given) has
    # nothing to test; the features' verdict does not depend on it.
    if current.predictions is None:
        return {}
    return {
        name: p.scale
        for name, p in profile.predictions.items()
        if _has_values(sample.predictions, name) and _has_values(current.predictions, name)
    }


def _has_values(frame: pd.DataFrame, name: str) -> bool:
    return name in frame and bool(frame[name].notna().any())


def _only(config: DriftConfig, kinds: dict[str, FeatureKind]) -> DriftConfig:
    return DriftConfig(
        features={n: c for n, c in config.features.items() if n in kinds},
        drift_share=config.drift_share,
    )


def _performance(
    rt: MLRuntime, tenant: str, version: ModelVersion, payload: DriftCheckPayload
) -> dict[str, Any] | None:
    """The version's metric on the labelled feedback of the window, against its training one.

    Only a prediction-log window has feedback; None there too when too few of its
    predictions are labelled or the model's kind takes no labels.
    """
    if payload.dataset_id is not None:
        return None
    with rt.sessions() as session:
        measured = measure_performance(
            session,
            tenant,
            version.model_name,
            version.version,
            since=payload.since,
            until=payload.until,
            config=payload.performance,
        )
    return measured.as_json() if measured is not None else None


def _announce(session: Session, tenant: str, outcome: CheckOutcome, events: ModelEvents) -> None:
    events(
        session,
        tenant,
        "model.drift_detected",
        {
            "model": outcome.model,
            "version": outcome.version,
            "report_id": outcome.report_id,
            "drifted_share": outcome.drifted_share,
            "drift_share": outcome.drift_share,
            "drifted_features": outcome.drifted_features,
            "prediction_drifted": outcome.prediction_drifted,
            "window": outcome.window,
        },
        dedupe_key=f"model.drift_detected:{outcome.report_id}",
    )
