"""The search's metrics: their names, which way is better, and how each is computed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from sklearn.pipeline import Pipeline

from aia_workers.ml.trainers.tabular import TabularTask

__all__ = ["METRICS", "metric_score", "score_predictions"]

# Metric name → whether higher is better.
METRICS: Mapping[TabularTask, Mapping[str, bool]] = {
    TabularTask.CLASSIFICATION: {"accuracy": True, "f1": True, "roc_auc": True},
    TabularTask.REGRESSION: {"r2": True, "mae": False, "neg_mae": True, "rmse": False},
}


def metric_score(name: str, pipeline: Pipeline, x: pd.DataFrame, y: pd.Series) -> float:
    """``pipeline``'s ``name`` metric on held-out ``x``, ``y``.

    * classification: ``accuracy`` (default), ``f1`` (macro average), ``roc_auc``
      (one-vs-rest for several classes); all in [0, 1], higher is better;
    * regression: ``r2`` (default; unitless, higher is better), ``mae`` and
      ``rmse`` (target units, lower is better), ``neg_mae`` (minus the MAE, so
      higher is better). Scores are reported as named, signs included.
    """
    if name in METRICS[TabularTask.CLASSIFICATION]:
        classes = list(pipeline.classes_)
        probabilities = pipeline.predict_proba(x)
        return score_predictions(name, TabularTask.CLASSIFICATION, y, probabilities, classes)
    return score_predictions(name, TabularTask.REGRESSION, y, pipeline.predict(x), [])


def score_predictions(
    name: str,
    task: TabularTask,
    y: pd.Series,
    predictions: np.ndarray,
    classes: Sequence[Any] | np.ndarray,
) -> float:
    """The ``name`` metric of ``predictions`` for ``y``, as ``metric_score`` reports it.

    ``predictions`` are class probabilities (columns in ``classes`` order)
    for classification, predicted values for regression.
    """
    if task == TabularTask.CLASSIFICATION:
        labels = np.asarray(classes)
        if name == "roc_auc":
            if len(labels) == 2:
                return float(roc_auc_score(y == labels[1], predictions[:, 1]))
            return float(roc_auc_score(y, predictions, multi_class="ovr", labels=labels))
        predicted = labels[np.argmax(predictions, axis=1)]
        if name == "accuracy":
            return float(accuracy_score(y, predicted))
        return float(f1_score(y, predicted, average="macro"))
    if name == "r2":
        return float(r2_score(y, predictions))
    if name == "rmse":
        return float(np.sqrt(mean_squared_error(y, predictions)))
    mae = float(mean_absolute_error(y, predictions))
    return -mae if name == "neg_mae" else mae
