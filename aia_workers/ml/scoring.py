"""A served model's score on labelled rows, computed from what it serves.

Scored from ``predict_rows`` output (the prediction, and for classifiers the
probabilities), so any version is judged as it answers predictions, whatever
kind of estimator is inside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from aia_workers.ml.contracts.tables import DatasetError

__all__ = ["served_score"]


def served_score(metric: str, truth: pd.Series, outputs: Sequence[dict[str, Any]]) -> float:
    """``metric`` of ``outputs`` (one per row) against the true values ``truth``.

    Classification (accuracy, f1 macro, roc_auc one-vs-rest) compares labels as
    text, since a label may come back from JSON as a number or a string;
    regression (r2, mae, rmse, neg_mae) reads the prediction as a number. NaN
    when the metric is undefined on these rows (roc_auc with a single class
    present); DatasetError for outputs the metric cannot read.
    """
    if len(outputs) != len(truth):
        raise ValueError(f"{len(outputs)} outputs for {len(truth)} rows")
    if metric in ("r2", "mae", "rmse", "neg_mae"):
        return _regression(metric, truth, outputs)
    labels = truth.astype(str).to_numpy()
    if metric == "roc_auc":
        return _roc_auc(labels, outputs)
    predicted = np.array([str(o.get("prediction")) for o in outputs], dtype=object)
    if metric == "accuracy":
        return float(accuracy_score(labels, predicted))
    if metric == "f1":
        # A class never predicted scores 0, rather than a warning per retrain.
        return float(f1_score(labels, predicted, average="macro", zero_division=0.0))
    raise ValueError(f"unknown metric {metric!r}")


def _regression(metric: str, truth: pd.Series, outputs: Sequence[dict[str, Any]]) -> float:
    y = pd.to_numeric(truth, errors="coerce").to_numpy(dtype=float)
    predicted = np.array([_number(o.get("prediction")) for o in outputs], dtype=float)
    if np.isnan(predicted).any():
        raise DatasetError("the model gave no number for some rows; it cannot be scored")
    if metric == "r2":
        return float(r2_score(y, predicted))
    if metric == "rmse":
        return float(math.sqrt(mean_squared_error(y, predicted)))
    mae = float(mean_absolute_error(y, predicted))
    return -mae if metric == "neg_mae" else mae


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _roc_auc(labels: np.ndarray, outputs: Sequence[dict[str, Any]]) -> float:
    first = outputs[0].get("probabilities") if outputs else None
    if not isinstance(first, dict):
        raise DatasetError("the model gives no class probabilities; roc_auc cannot score it")
    classes = [str(k) for k in first]
    probabilities = np.array(
        [[float(o["probabilities"].get(k, 0.0)) for k in classes] for o in outputs]
    )
    present = set(labels)
    unknown = present - set(classes)
    if unknown:
        # A class the model never saw has no probability to rank rows by.
        raise DatasetError(
            f"the holdout holds classes the model does not know ({', '.join(sorted(unknown))}); "
            "roc_auc cannot score it: compare by accuracy or f1 instead"
        )
    if len(present) < 2:
        return math.nan
    if len(classes) == 2:
        return float(roc_auc_score(labels == classes[1], probabilities[:, 1]))
    try:
        return float(
            roc_auc_score(
                labels, probabilities, multi_class="ovr", labels=np.array(classes, dtype=object)
            )
        )
    except ValueError:
        # One-vs-rest is undefined for a class the holdout lacks.
        return math.nan
