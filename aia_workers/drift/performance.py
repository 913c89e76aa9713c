"""Performance drift: a version's metric on fed-back labels against the one its training recorded.

Free of Celery: ``drift.check`` calls ``measure_performance`` with a session. The
live metric is scored from the logged predictions of the version that have a
label (``ml.feedback``) as a retrain scores a holdout (``ml.scoring``), with the
definitions training recorded its holdout metrics by.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from aia_workers.db.ml import Experiment, ModelVersion, PredictionLog
from aia_workers.drift.contracts.checks import PerformanceConfig
from aia_workers.drift.errors import DriftInputError
from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.contracts.retraining import DEFAULT_METRIC, HIGHER_IS_BETTER
from aia_workers.ml.contracts.tables import DatasetError
from aia_workers.ml.registry import ModelRegistry
from aia_workers.ml.scoring import served_score

__all__ = [
    "PerformanceDrift",
    "compare_performance",
    "measure_performance",
    "performance_metric",
    "score_labels",
]

# Errors in the target's units: their drop is a share of the training value (see
# PerformanceConfig), the others' a difference in their own unitless scale.
_RELATIVE = frozenset({"mae", "rmse", "neg_mae"})


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class PerformanceDrift:
    """The live metric against the training one, and whether it dropped by more than allowed.

    ``drop`` is how much worse live is than training, whichever way the metric
    points (negative: better); in the metric's units, or as a share of the
    training value when ``relative`` (mae, rmse, neg_mae). ``drifted`` is
    ``drop > max_drop``. ``labels`` counts the labelled predictions scored.
    """

    metric: str
    training: float
    live: float
    labels: int
    drop: float
    max_drop: float
    drifted: bool
    higher_is_better: bool
    relative: bool

    def as_json(self) -> dict[str, Any]:
        """JSON-safe fields, for a stored report (a drop past any bound reads as null)."""
        return {
            "metric": self.metric,
            "training": _json_float(self.training),
            "live": _json_float(self.live),
            "labels": self.labels,
            "drop": _json_float(self.drop),
            "max_drop": self.max_drop,
            "drifted": self.drifted,
            "higher_is_better": self.higher_is_better,
            "relative": self.relative,
        }


def performance_metric(version: ModelVersion, experiment: Experiment | None) -> str | None:
    """The metric the version's training optimised and recorded; None for kinds without one."""
    task = MLTask(version.task)
    if task not in DEFAULT_METRIC:
        return None
    details = version.details if isinstance(version.details, Mapping) else {}
    # The tabular search records the metric it used; text training takes the experiment's.
    recorded = details.get("metric") if task != MLTask.TEXT_CLASSIFICATION else None
    chosen = recorded or (experiment.metric if experiment is not None else None)
    return str(chosen or DEFAULT_METRIC[task])


def _training_value(version: ModelVersion, metric: str) -> float | None:
    metrics = version.metrics if isinstance(version.metrics, Mapping) else {}
    value = metrics.get("mae") if metric == "neg_mae" else metrics.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return -float(value) if metric == "neg_mae" else float(value)


def score_labels(
    task: MLTask, metric: str, outputs: Sequence[Mapping[str, Any]], labels: Sequence[Any]
) -> tuple[float | None, int]:
    """``metric`` of the predictions in ``outputs`` against ``labels``, and the pairs scored.

    Pairs whose prediction or label is missing (or, for regression, not a
    number) are left out. The value is None when the metric is not defined on
    what is left: fewer than two pairs, roc_auc where a class has no label or a
    label is a class the model does not know.
    """
    if task == MLTask.REGRESSION:
        pairs = [
            (float(label), dict(out))
            for out, label in zip(outputs, labels, strict=True)
            if _is_number(out.get("prediction")) and _is_number(label)
        ]
    else:
        pairs = [
            (label, dict(out))
            for out, label in zip(outputs, labels, strict=True)
            if out.get("prediction") is not None and label is not None
        ]
    if len(pairs) < 2:
        return None, len(pairs)
    truth = pd.Series([label for label, _ in pairs], dtype=object)
    try:
        value = served_score(metric, truth, [out for _, out in pairs])
    except DatasetError:
        return None, len(pairs)
    return (value if math.isfinite(value) else None), len(pairs)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def compare_performance(
    metric: str, training: float, live: float, labels: int, config: PerformanceConfig
) -> PerformanceDrift:
    """How far ``live`` fell from ``training``, and whether that is more than ``config`` allows."""
    higher = HIGHER_IS_BETTER[metric]
    drop = training - live if higher else live - training
    relative = metric in _RELATIVE
    if relative:
        if training != 0:
            drop /= abs(training)
        elif drop != 0:
            # No share of a perfect score is "worse by 5 %": any error is past every bound.
            drop = math.copysign(math.inf, drop)
    return PerformanceDrift(
        metric=metric,
        training=training,
        live=live,
        labels=labels,
        drop=drop,
        max_drop=config.max_drop,
        drifted=drop > config.max_drop,
        higher_is_better=higher,
        relative=relative,
    )


def measure_performance(
    session: Session,
    tenant: str,
    model_name: str,
    version: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    config: PerformanceConfig,
) -> PerformanceDrift | None:
    """The version's metric on its labelled predictions made in [since, until), against training.

    The metric is the one the version's training optimised (the experiment's,
    or the kind's default), computed as training computed it on its holdout,
    and compared with the value training recorded. None when there is nothing
    to compare: a kind that takes no labels (forecasting, sentiment, anomaly
    detection), no recorded training value for the metric, fewer than
    ``config.min_labels`` labelled predictions in the window, or a metric not
    defined on them (roc_auc when a class has no label). DriftInputError when
    the tenant's model has no such version.
    """
    registry = ModelRegistry(session, tenant)
    found = registry.version(model_name, version)
    if found is None:
        raise DriftInputError(f"model {model_name!r} has no version {version}")
    metric = performance_metric(found, registry.experiment(found.experiment_id))
    if metric is None or metric not in HIGHER_IS_BETTER:
        return None
    training = _training_value(found, metric)
    if training is None:
        return None
    query = select(PredictionLog.outputs, PredictionLog.label).where(
        PredictionLog.tenant_id == tenant,
        PredictionLog.model_name == model_name,
        PredictionLog.version == version,
        PredictionLog.label.is_not(None),
    )
    if since is not None:
        query = query.where(PredictionLog.created_at >= since)
    if until is not None:
        query = query.where(PredictionLog.created_at < until)
    rows = session.execute(query).all()
    if len(rows) < config.min_labels:
        return None
    live, labels = score_labels(
        MLTask(found.task),
        metric,
        [out if isinstance(out, Mapping) else {} for out, _ in rows],
        [label for _, label in rows],
    )
    if live is None or labels < config.min_labels:
        return None
    return compare_performance(metric, training, live, labels, config)
