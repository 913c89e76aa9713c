"""What a retrain needs of a model and its data, and how its metric is read.

Light on purpose: the API checks a retrain request with these before it
enqueues one, and the worker checks again with the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.contracts.tables import DatasetError

__all__ = [
    "DEFAULT_METRIC",
    "HIGHER_IS_BETTER",
    "RETRAINABLE",
    "Decision",
    "check_current_data",
    "check_retrainable",
    "decide",
    "missing_columns",
    "retrain_metric",
]

Decision = Literal["promoted", "kept", "no_champion"]

# Kinds whose models can be scored on rows held out at random. Forecasters are
# not: a random holdout breaks the series' order, and a champion forecasts past
# the data it was trained on, not the rows held out. Sentiment and anomaly
# detection learn no metric to compare (their METRICS are empty).
RETRAINABLE: frozenset[MLTask] = frozenset(
    {MLTask.CLASSIFICATION, MLTask.REGRESSION, MLTask.TEXT_CLASSIFICATION}
)

# What each kind's trainer optimises when the experiment names no metric.
DEFAULT_METRIC: Mapping[MLTask, str] = {
    MLTask.CLASSIFICATION: "accuracy",
    MLTask.REGRESSION: "r2",
    MLTask.TEXT_CLASSIFICATION: "f1",
}

_TOLERANCE = 1e-9

HIGHER_IS_BETTER: Mapping[str, bool] = {
    "accuracy": True,
    "f1": True,
    "roc_auc": True,
    "r2": True,
    "neg_mae": True,
    "mae": False,
    "rmse": False,
}


def check_retrainable(task: MLTask) -> None:
    """DatasetError saying why, unless models of ``task`` can be compared on a holdout."""
    if task not in RETRAINABLE:
        kinds = ", ".join(sorted(RETRAINABLE))
        raise DatasetError(
            f"a {task} model cannot be retrained by champion and challenger: there is no "
            f"score on held-out rows to compare them by (retraining covers {kinds}); "
            "start a run of its experiment and move the alias yourself"
        )


def retrain_metric(task: MLTask, metric: str | None) -> str:
    """The metric champion and challenger are compared by: the experiment's, or its kind's."""
    name = metric or DEFAULT_METRIC[task]
    if name not in HIGHER_IS_BETTER:
        known = ", ".join(HIGHER_IS_BETTER)
        raise DatasetError(f"the metric {name!r} cannot compare models; known: {known}")
    return name


def missing_columns(
    columns: Sequence[Mapping[str, Any]], target: str | None, features: Sequence[str]
) -> list[str]:
    """The target and feature columns (in that order) that ``columns`` (a profile) lacks."""
    present = {str(c["name"]) for c in columns}
    wanted = [*([target] if target else []), *features]
    return [name for name in wanted if name not in present]


def check_current_data(
    model: str,
    dataset_id: str,
    columns: Sequence[Mapping[str, Any]],
    target: str | None,
    features: Sequence[str],
    champion_signature: Sequence[Mapping[str, Any]] | None,
) -> None:
    """DatasetError naming every column the current data lacks.

    It needs the experiment's target and features; when the experiment lets
    the data choose its features, the champion's inputs, which it must be
    given to predict the holdout.
    """
    wanted = list(features) or [str(c["name"]) for c in champion_signature or ()]
    missing = missing_columns(columns, target, wanted)
    if missing:
        raise DatasetError(
            f"dataset {dataset_id} lacks the column(s) {', '.join(map(repr, missing))} "
            f"of model {model!r} (target {target!r}, features "
            f"{', '.join(map(repr, wanted)) or 'chosen from the data'})",
            column=missing[0],
        )


def decide(metric: str, champion: float | None, challenger: float, margin: float) -> Decision:
    """Whether the challenger takes the alias.

    ``champion`` None means there is no champion: the challenger takes the
    alias. Otherwise it must be strictly better, by at least ``margin`` (in the
    metric's units), lower-is-better metrics (mae, rmse) read the right way.
    When either score could not be computed (NaN), the alias stays.
    """
    if champion is None:
        return "no_champion"
    if math.isnan(challenger) or math.isnan(champion):
        return "kept"
    gain = challenger - champion if HIGHER_IS_BETTER[metric] else champion - challenger
    # Scores are means over the holdout: 0.95 - 0.90 is 0.04999... in floats, and
    # a challenger better by exactly the margin should win.
    return "promoted" if gain > 0 and gain >= margin - _TOLERANCE else "kept"
