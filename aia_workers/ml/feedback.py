"""Ground truth for logged predictions: labels checked against the model, stored on the log.

Light on purpose (SQLAlchemy and the standard library): the API calls it in the
request. Performance checks (``aia_workers.drift.performance``) read what it stores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from aia_workers.db.ml import PredictionLog
from aia_workers.errors import AiaError
from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.contracts.retraining import RETRAINABLE

__all__ = [
    "FEEDBACK_TASKS",
    "MAX_FEEDBACK_ITEMS",
    "Feedback",
    "FeedbackOutcome",
    "LabelError",
    "check_label",
    "record_feedback",
]

MAX_FEEDBACK_ITEMS = 1_000

# The kinds whose predictions a true label can be scored against, by the metric
# their training records: those a retrain compares on held-out rows too.
# Forecasts are judged against later observations, and sentiment and anomaly
# models mostly learn without labels.
FEEDBACK_TASKS = RETRAINABLE


class LabelError(AiaError):
    """Raised when fed-back labels do not fit the model; ``items`` names each one that does not."""

    def __init__(self, message: str, items: Sequence[tuple[int, str]] = ()) -> None:
        super().__init__(message)
        self.items = list(items)


@dataclass(frozen=True, slots=True)
class Feedback:
    """One label for one logged prediction."""

    prediction_id: str
    label: Any


@dataclass(frozen=True, slots=True)
class FeedbackOutcome:
    """How many predictions were labelled, and the ids not found for this tenant and model."""

    labelled: int
    unknown: list[str] = field(default_factory=list)


def check_label(task: MLTask, label: Any, outputs: Mapping[str, Any] | None = None) -> Any:
    """``label`` as stored for a model of kind ``task``; ValueError saying what would fit.

    Regression: a finite number. Classification: a value of the kind of the
    model's classes, which the logged prediction (``outputs``) shows: a whole
    number where the classes are whole numbers (``true`` and ``false`` count as
    1 and 0, as a boolean target did in training), else a string. Without
    ``outputs`` only what any class could be is checked.
    """
    if task not in FEEDBACK_TASKS:
        raise ValueError(f"{task.value} models take no feedback")
    if label is None:
        raise ValueError("a label is a value, not null")
    if task == MLTask.REGRESSION:
        if isinstance(label, bool) or not isinstance(label, int | float):
            raise ValueError(f"a regression model's label is a number, not {label!r}")
        if not math.isfinite(label):
            raise ValueError(f"a label must be a finite number, not {label!r}")
        return float(label)
    if not isinstance(label, str | int | float):
        raise ValueError(f"a class label is a string or a whole number, not {label!r}")
    predicted = None if outputs is None else outputs.get("prediction")
    if isinstance(predicted, str):
        if not isinstance(label, str):
            raise ValueError(
                f"this model's classes are strings (it predicted {predicted!r}); "
                f"send the label as a string, not {label!r}"
            )
        return label
    if isinstance(predicted, int) and not isinstance(predicted, bool):
        if isinstance(label, bool):
            return int(label)
        if isinstance(label, int | float) and math.isfinite(label) and label == int(label):
            return int(label)
        raise ValueError(
            f"this model's classes are whole numbers (it predicted {predicted!r}); "
            f"send the label as one, not {label!r}"
        )
    if isinstance(label, float):
        if not (math.isfinite(label) and label == int(label)):
            raise ValueError(f"a class label is a string or a whole number, not {label!r}")
        return int(label)
    return label


def record_feedback(
    session: Session,
    tenant: str,
    model_name: str,
    task: MLTask,
    items: Sequence[Feedback],
    *,
    keep: int,
    now: datetime,
) -> FeedbackOutcome:
    """Label the logged predictions ``items`` name; LabelError (nothing stored) if any label is bad.

    Only ``tenant``'s predictions of ``model_name`` are found; other ids come
    back as unknown, whoever they belong to. Labelling again overwrites (for an
    id given twice, the last label counts). At most ``keep`` labelled
    predictions (the newest) are kept per version, apart from the unlabelled
    ones the prediction log keeps.
    """
    if task not in FEEDBACK_TASKS:
        kinds = ", ".join(sorted(t.value for t in FEEDBACK_TASKS))
        raise LabelError(
            f"{model_name!r} is a {task.value} model; feedback is taken for {kinds} models"
        )
    ids = list(dict.fromkeys(item.prediction_id for item in items))
    rows = {
        row.id: row
        for row in session.scalars(
            select(PredictionLog).where(
                PredictionLog.tenant_id == tenant,
                PredictionLog.model_name == model_name,
                PredictionLog.id.in_(ids),
            )
        )
    }
    labels: dict[str, Any] = {}
    errors: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        row = rows.get(item.prediction_id)
        try:
            labels[item.prediction_id] = check_label(
                task, item.label, row.outputs if row is not None else None
            )
        except ValueError as exc:
            errors.append((index, str(exc)))
    if errors:
        first_index, first = errors[0]
        raise LabelError(f"item {first_index}: {first}", errors)
    for prediction_id, row in rows.items():
        row.label = labels[prediction_id]
        row.labelled_at = now
    session.flush()
    if keep > 0:
        for version in sorted({row.version for row in rows.values()}):
            _trim_labelled(session, tenant, model_name, version, keep)
    return FeedbackOutcome(len(rows), [i for i in ids if i not in rows])


def _trim_labelled(session: Session, tenant: str, model_name: str, version: int, keep: int) -> None:
    scope = (
        PredictionLog.tenant_id == tenant,
        PredictionLog.model_name == model_name,
        PredictionLog.version == version,
        PredictionLog.label.is_not(None),
    )
    cutoff = session.scalar(
        select(PredictionLog.created_at)
        .where(*scope)
        .order_by(PredictionLog.created_at.desc())
        .offset(keep)
        .limit(1)
    )
    if cutoff is not None:
        session.execute(delete(PredictionLog).where(*scope, PredictionLog.created_at <= cutoff))
