"""The model families searched, their grids and fit costs, and how to build an estimator."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.preprocessing import StandardScaler

from aia_workers.ml.trainers.neural import MLPClassifier, MLPRegressor
from aia_workers.ml.trainers.tabular import TabularTask, estimator_catalogue

__all__ = ["CALIBRATION_FOLDS", "SEARCH_SPACES", "Family", "build_estimator"]

# tabular's SVM classifier calibrates its probabilities on this many inner folds,
# which need this many rows of every class.
CALIBRATION_FOLDS = 5


@dataclass(frozen=True, slots=True)
class Family:
    """One model family: its default point, its grid, and how its fit time grows.

    ``growth`` is the exponent in fit seconds ∝ rows**growth; ``cost`` gives a
    parameter point's fit time relative to the defaults (1.0).
    """

    defaults: dict[str, Any]
    grid: dict[str, tuple[Any, ...]]
    growth: float = 1.0
    cost: Callable[[dict[str, Any]], float] = field(default=lambda _: 1.0)

    def points(self) -> list[dict[str, Any]]:
        """Every grid point except the defaults, in a fixed order."""
        names = sorted(self.grid)
        every = (
            dict(zip(names, v, strict=True))
            for v in itertools.product(*(self.grid[n] for n in names))
        )
        return [p for p in every if p != self.defaults]


_C = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
_SHARED = {
    "random_forest": Family(
        {"n_estimators": 200, "max_depth": None, "min_samples_leaf": 1, "max_features": "sqrt"},
        {
            "n_estimators": (100, 200, 400),
            "max_depth": (None, 8, 16),
            "min_samples_leaf": (1, 2, 5),
            "max_features": ("sqrt", "log2"),
        },
        growth=1.3,
        cost=lambda p: p["n_estimators"] / 200,
    ),
    "hist_gradient_boosting": Family(
        {"learning_rate": 0.1, "max_leaf_nodes": 31, "l2_regularization": 0.0, "max_iter": 100},
        # Small trees over many rounds too: on additive targets they beat the
        # defaults' 31 leaves (R² 0.882 against 0.864 on bench/automl_quality.py's
        # mixed regression, 3-fold).
        {
            "learning_rate": (0.03, 0.05, 0.1, 0.3),
            "max_leaf_nodes": (7, 15, 31, 63),
            "l2_regularization": (0.0, 0.1, 1.0),
            "max_iter": (100, 300, 600),
        },
        cost=lambda p: p["max_iter"] / 100 * p["max_leaf_nodes"] / 31,
    ),
}
_MLP = Family(
    {"hidden_layers": (64, 32), "learning_rate": 1e-3, "weight_decay": 1e-4, "dropout": 0.0},
    {
        "hidden_layers": ((64, 32), (128, 64), (64,), (256,)),
        "learning_rate": (3e-4, 1e-3, 3e-3),
        "weight_decay": (1e-5, 1e-4, 1e-3),
        "dropout": (0.0, 0.1, 0.2),
    },
    # A smaller step needs more epochs before early stopping ends training.
    cost=lambda p: max(1.0, 1e-3 / p["learning_rate"]),
)
# Kernel SVMs solve in roughly quadratic time, and larger C takes more iterations.
_SVM_GROWTH = 2.0


def _svm_cost(p: dict[str, Any]) -> float:
    return float(max(1.0, p["C"]) ** 0.5)


SEARCH_SPACES: Mapping[TabularTask, Mapping[str, Family]] = {
    TabularTask.CLASSIFICATION: {
        "logistic_regression": Family(
            {"C": 1.0, "class_weight": None}, {"C": _C, "class_weight": (None, "balanced")}
        ),
        **_SHARED,
        "svm": Family(
            {"C": 1.0, "gamma": "scale"},
            {"C": _C[2:-1], "gamma": ("scale", 0.01, 0.1)},
            growth=_SVM_GROWTH,
            cost=_svm_cost,
        ),
        "mlp": _MLP,
    },
    TabularTask.REGRESSION: {
        "ridge": Family({"alpha": 1.0}, {"alpha": _C}),
        **_SHARED,
        "svm": Family(
            {"C": 1.0, "epsilon": 0.1, "gamma": "scale"},
            {"C": _C[2:-1], "epsilon": (0.01, 0.1, 0.3), "gamma": ("scale", 0.01, 0.1)},
            growth=_SVM_GROWTH,
            cost=_svm_cost,
        ),
        "mlp": _MLP,
    },
}


def build_estimator(task: TabularTask, family: str, seed: int, params: Mapping[str, Any]) -> Any:
    """A fresh estimator of ``family`` at ``params`` (catalogue defaults for the rest).

    ``n_jobs`` in ``params`` is ignored: the worker decides (one thread per fit).
    """
    params = {k: v for k, v in params.items() if k != "n_jobs"}
    if family == "mlp":
        network = MLPClassifier if task == TabularTask.CLASSIFICATION else MLPRegressor
        return network(random_state=seed, **params)
    estimator: BaseEstimator = estimator_catalogue(task, seed)[family]
    if isinstance(estimator, CalibratedClassifierCV):
        # The classifier SVM is wrapped for probabilities; its knobs live on the inner SVC.
        estimator.estimator.set_params(**params)
        return estimator
    estimator.set_params(**params)
    if family == "svm":  # the regression SVM: the classifier returned above
        # SVR's C and epsilon are in target units; a standardized target lets one grid fit all.
        return TransformedTargetRegressor(regressor=estimator, transformer=StandardScaler())
    return estimator
