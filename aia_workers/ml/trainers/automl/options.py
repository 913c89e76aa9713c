"""The search's options, checked: metric, families, trial cap, or one estimator's parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aia_workers.ml.contracts.tables import DatasetError
from aia_workers.ml.trainers.automl.metrics import METRICS
from aia_workers.ml.trainers.automl.spaces import CALIBRATION_FOLDS, SEARCH_SPACES, Family
from aia_workers.ml.trainers.fitted import TrainingSpec
from aia_workers.ml.trainers.tabular import TabularSplit, TabularTask

__all__ = ["search_choices", "single_choice"]


def search_choices(
    task: TabularTask, spec: TrainingSpec
) -> tuple[str, dict[str, Family], int | None]:
    """The metric, the families to search and the trial cap, checked against ``spec``."""
    metric = spec.metric or next(iter(METRICS[task]))
    if metric not in METRICS[task]:
        known = ", ".join(METRICS[task])
        raise ValueError(f"unknown metric {metric!r} for {task}; known: {known}")
    spaces = SEARCH_SPACES[task]
    single = spec.options.get("estimator")
    chosen = [single] if single is not None else spec.options.get("estimators") or list(spaces)
    if isinstance(chosen, str):
        chosen = [chosen]
    if not isinstance(chosen, list | tuple):
        raise ValueError(f"estimators must be a list of estimator names, not {chosen!r}")
    for name in chosen:
        if name not in spaces:
            known = ", ".join(spaces)
            raise ValueError(f"unknown estimator {name!r} for {task}; known: {known}")
    cap = spec.options.get("max_trials")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ValueError(f"max_trials must be a whole number >= 1, not {cap!r}")
    return metric, {name: spaces[name] for name in chosen}, cap


def single_choice(
    spec: TrainingSpec, task: TabularTask, families: dict[str, Family], data: TabularSplit
) -> tuple[str, dict[str, Any]]:
    """The family and parameters ``options["estimator"]`` and ``options["params"]`` ask for."""
    family = str(spec.options["estimator"])
    extra = spec.options.get("params") or {}
    if not isinstance(extra, Mapping):
        raise ValueError(f"params must be an object of parameter values, not {extra!r}")
    smallest = data.y_train.value_counts().min()
    if task == TabularTask.CLASSIFICATION and family == "svm" and smallest < CALIBRATION_FOLDS:
        raise DatasetError(
            f"the svm needs at least {CALIBRATION_FOLDS} training rows of every class",
            column=spec.target,
        )
    return family, {**families[family].defaults, **extra}
