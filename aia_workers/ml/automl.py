"""Tabular AutoML: a seeded random search over model families that honours a time budget.

``search_tabular`` cross-validates candidates (3 folds of the 80 % training
split), refits the best on the whole training split and scores it on the 20 %
holdout, all within ``spec.time_budget_seconds``: each trial is timed, and the
next starts only when it is expected to finish with time left for the refit.

Metrics (``spec.metric``), each computed on held-out rows:

* classification: ``accuracy`` (default), ``f1`` (macro average), ``roc_auc``
  (one-vs-rest for several classes); all in [0, 1], higher is better;
* regression: ``r2`` (default; unitless, higher is better), ``mae`` and
  ``rmse`` (target units, lower is better), ``neg_mae`` (minus the MAE, so
  higher is better). Scores are reported as named, signs included.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from aia_workers.ml.datasets import ColumnKind, DatasetError
from aia_workers.ml.fitted import Fitted, TrainingSpec, Trial, json_safe
from aia_workers.ml.neural import MLPClassifier, MLPRegressor
from aia_workers.ml.tabular import (
    TabularTask,
    build_pipeline,
    estimator_catalogue,
    holdout_scores,
)
from aia_workers.progress import ProgressReporter, discard_progress

__all__ = ["METRICS", "SEARCH_SPACES", "Family", "TabularPredictor", "search_tabular"]

# Metric name → whether higher is better.
METRICS: Mapping[TabularTask, Mapping[str, bool]] = {
    TabularTask.CLASSIFICATION: {"accuracy": True, "f1": True, "roc_auc": True},
    TabularTask.REGRESSION: {"r2": True, "mae": False, "neg_mae": True, "rmse": False},
}
_HOLDOUT = 0.2
_FOLDS = 3
_MIN_ROWS = 10


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
        {
            "learning_rate": (0.03, 0.1, 0.3),
            "max_leaf_nodes": (15, 31, 63),
            "l2_regularization": (0.0, 0.1, 1.0),
            "max_iter": (100, 300),
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


def _estimator(task: TabularTask, family: str, seed: int, params: Mapping[str, Any]) -> Any:
    """A fresh estimator of ``family`` at ``params`` (catalogue defaults for the rest)."""
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


def _metric(name: str, pipeline: Pipeline, x: pd.DataFrame, y: pd.Series) -> float:
    """``pipeline``'s ``name`` metric on held-out ``x``, ``y`` (see the module docstring)."""
    if name == "roc_auc":
        probabilities = pipeline.predict_proba(x)
        classes = pipeline.classes_
        if len(classes) == 2:
            return float(roc_auc_score(y == classes[1], probabilities[:, 1]))
        return float(roc_auc_score(y, probabilities, multi_class="ovr", labels=classes))
    predicted = pipeline.predict(x)
    if name == "accuracy":
        return float(accuracy_score(y, predicted))
    if name == "f1":
        return float(f1_score(y, predicted, average="macro"))
    if name == "r2":
        return float(r2_score(y, predicted))
    if name == "rmse":
        return float(np.sqrt(mean_squared_error(y, predicted)))
    mae = float(mean_absolute_error(y, predicted))
    return -mae if name == "neg_mae" else mae


class TabularPredictor:
    """A fitted tabular pipeline and its input columns; serves JSON-safe predictions."""

    def __init__(self, pipeline: Pipeline, task: TabularTask, features: list[str]) -> None:
        self.pipeline = pipeline
        self.task = TabularTask(task)
        self.features = list(features)
        classification = self.task == TabularTask.CLASSIFICATION
        self.classes: list[Any] = json_safe(pipeline.classes_) if classification else []

    def predict_rows(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Per row ``{"prediction": value}``; classification adds ``{"probabilities": {label: p}}``.

        Probabilities are in [0, 1] and the prediction is the most probable label.
        """
        for column in self.features:
            if column not in frame.columns:
                raise DatasetError(f"there is no column {column!r}", column=column)
        if frame.empty:
            return []
        x = frame[self.features]
        if self.task == TabularTask.REGRESSION:
            return [{"prediction": json_safe(float(v))} for v in self.pipeline.predict(x)]
        keys = [str(c) for c in self.classes]
        return [
            {
                "prediction": self.classes[int(np.argmax(row))],
                "probabilities": {k: float(p) for k, p in zip(keys, row, strict=True)},
            }
            for row in self.pipeline.predict_proba(x)
        ]


@dataclass(frozen=True, slots=True)
class _Data:
    x_train: pd.DataFrame
    y_train: pd.Series
    x_test: pd.DataFrame
    y_test: pd.Series
    kinds: dict[str, ColumnKind]


def _prepare(frame: pd.DataFrame, spec: TrainingSpec, task: TabularTask) -> _Data:
    """Checked features and target, split into training and holdout rows."""
    target = spec.target
    if not target or target not in frame.columns:
        raise DatasetError(f"there is no column {target!r} to predict", column=target)
    kinds: dict[str, ColumnKind] = {}
    for column in spec.features or list(frame.columns):
        if column == target:
            continue
        if column not in frame.columns:
            raise DatasetError(f"there is no feature column {column!r}", column=column)
        if column not in spec.kinds:
            raise DatasetError(f"the kind of column {column!r} is not known", column=column)
        if spec.kinds[column] != ColumnKind.TEXT:
            kinds[column] = ColumnKind(spec.kinds[column])
    y = frame[target]
    if task == TabularTask.REGRESSION:
        y = pd.to_numeric(y, errors="coerce")
        if y.isna().all():
            raise DatasetError(f"the target {target!r} is not numeric", column=target)
    y = y[y.notna()]
    if y.nunique() < 2:
        raise DatasetError(f"the target {target!r} has a single value", column=target)
    if len(y) < _MIN_ROWS:
        raise DatasetError(f"{len(y)} rows with a target are too few to split", column=target)
    classification = task == TabularTask.CLASSIFICATION
    stratify = y if classification and y.value_counts().min() >= 2 else None
    x_train, x_test, y_train, y_test = train_test_split(
        frame.loc[y.index, list(kinds)],
        y,
        test_size=_HOLDOUT,
        random_state=spec.seed,
        stratify=stratify,
    )
    return _Data(x_train, y_train, x_test, y_test, kinds)


def _choices(task: TabularTask, spec: TrainingSpec) -> tuple[str, dict[str, Family], int | None]:
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


@contextmanager
def _quiet_convergence(sink: list[str]) -> Iterator[None]:
    """Collect ConvergenceWarnings into ``sink``; other warnings pass on unchanged.

    A solver that stopped at its iteration cap still gives a usable model, and
    its cross-validated score says how good it is: no reason to fail the trial.
    """
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always", ConvergenceWarning)
        yield
    for record in records:
        if issubclass(record.category, ConvergenceWarning):
            sink.append(str(record.message))
        else:
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)


def _draws(families: Mapping[str, Family], seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every family's defaults first, then seeded random untried points until none remain."""
    for name, family in families.items():
        yield name, dict(family.defaults)
    rng = np.random.default_rng(seed)
    untried = {name: points for name, f in families.items() if (points := f.points())}
    while untried:
        name = list(untried)[int(rng.integers(len(untried)))]
        points = untried[name]
        yield name, points.pop(int(rng.integers(len(points))))
        if not points:
            del untried[name]


# Errors a candidate's own fit or scoring raises; anything else (an interrupt, the
# worker's time limit) must end the search, not be recorded as a failed trial.
_TRIAL_ERRORS = (ArithmeticError, LookupError, MemoryError, RuntimeError, TypeError, ValueError)
# Expected seconds are multiplied by these: fit times vary from run to run.
_ESTIMATE_MARGIN = 1.3
_REFIT_MARGIN = 1.3
# Plans aim to end by this share of the budget; the rest absorbs estimation errors.
_PLAN_SHARE = 0.95
# An unseen family on a large split is first timed on this many rows, and only
# while this share of the budget is still free.
_PILOT_ROWS = 500
_PILOT_SHARE = 0.1
_MAX_FAILURES = 2
# tabular's SVM classifier calibrates its probabilities on this many inner folds,
# which need this many rows of every class.
_CALIBRATION_FOLDS = 5


@dataclass(slots=True)
class _Record:
    trial: Trial
    params: dict[str, Any]  # as drawn (tuples kept), for the refit
    folds: list[float]  # seconds per completed fold
    utility: float | None  # the score, negated when lower is better


class _Search:
    """Random search state: trials so far, per-family timings, families dropped and why."""

    def __init__(
        self,
        data: _Data,
        task: TabularTask,
        metric: str,
        families: dict[str, Family],
        spec: TrainingSpec,
        started: float,
    ) -> None:
        self.data, self.task, self.metric, self.families = data, task, metric, families
        self.seed = spec.seed
        self.budget = spec.time_budget_seconds
        self.deadline = started + self.budget * _PLAN_SHARE
        counts = data.y_train.value_counts()
        stratified = task == TabularTask.CLASSIFICATION and counts.min() >= _FOLDS
        splitter = (StratifiedKFold if stratified else KFold)(
            _FOLDS, shuffle=True, random_state=spec.seed
        )
        self.folds = list(splitter.split(data.x_train, data.y_train))
        self.fold_rows = float(np.mean([len(train) for train, _ in self.folds]))
        pilot = np.random.default_rng(spec.seed).permutation(self.folds[0][0])
        self.pilot_rows = pilot[: min(_PILOT_ROWS, len(pilot))]
        self.records: list[_Record] = []
        self.unit_seconds: dict[str, float] = {}  # slowest fold seconds per unit of cost
        self.failures: dict[str, int] = {}
        self.pilot_seconds: dict[str, float] = {}  # a pilot's fold estimate per unit of cost
        self.dropped: dict[str, str] = {}  # family → why it is no longer tried
        self.skipped = 0  # candidates not started: they would have overrun the budget
        self.cut = 0  # trials stopped between folds for the same reason
        self.space = sum(len(f.points()) + 1 for f in families.values())
        if task == TabularTask.CLASSIFICATION and "svm" in families:
            smallest = min(data.y_train.iloc[train].value_counts().min() for train, _ in self.folds)
            if smallest < _CALIBRATION_FOLDS:
                self.dropped["svm"] = f"a class has fewer than {_CALIBRATION_FOLDS} rows in a fold"

    def run(self, cap: int | None, report: ProgressReporter) -> str:
        """Try candidates until the cap, the budget or the space runs out; says which."""
        for family, params in _draws(self.families, self.seed):
            if family in self.dropped:
                continue
            if self.records and self._left() <= self._reserve():
                return "budget"
            if self.records and not self._affordable(family, params):
                self.skipped += 1
                continue
            first = not self.records
            self._record(family, params, *self._trial(family, params, abortable=not first))
            score = self.records[-1].trial.score
            message = f"{family} {score:.4f}" if score is not None else f"{family} failed"
            total = min(cap, self.space) if cap is not None else self._expected_trials()
            report(len(self.records), total, message)
            if cap is not None and len(self.records) >= cap:
                return "max_trials"
        return "budget" if self.skipped or self.cut else "exhausted"

    def best(self) -> _Record | None:
        """The first of the best-scoring trials, if any trial succeeded."""
        ranked = self._ranked()
        return ranked[0] if ranked and ranked[0].utility is not None else None

    def leaderboard(self) -> list[Trial]:
        """Every trial, best first; failed and cut-short ones last, in the order they ran."""
        return [r.trial for r in self._ranked()]

    def _ranked(self) -> list[_Record]:
        # A stable sort: equal scores keep the order they were tried in.
        return sorted(
            self.records,
            key=lambda r: -math.inf if r.utility is None else r.utility,
            reverse=True,
        )

    def _left(self) -> float:
        return self.deadline - time.perf_counter()

    def _refit_factor(self, family: str) -> float:
        rows = len(self.data.y_train) / self.fold_rows
        return float(rows ** self.families[family].growth) * _REFIT_MARGIN

    def _reserve(self) -> float:
        """Expected seconds to refit the best candidate so far on the whole training split."""
        best = self.best()
        if best is None:
            return 0.0
        return float(np.mean(best.folds)) * self._refit_factor(best.trial.estimator)

    def _affordable(self, family: str, params: dict[str, Any]) -> bool:
        reserve = self._reserve()
        fold = self._fold_seconds(family, params, reserve)
        if fold is None:
            return True
        return fold * _FOLDS + max(reserve, fold * self._refit_factor(family)) <= self._left()

    def _fold_seconds(self, family: str, params: dict[str, Any], reserve: float) -> float | None:
        """Expected seconds of one fold; None when unknown (a small split, a failed pilot)."""
        cost = self.families[family].cost(params)
        unit = self.unit_seconds.get(family, self.pilot_seconds.get(family))
        if unit is None and self.fold_rows > 2 * len(self.pilot_rows):
            if self._left() - reserve < _PILOT_SHARE * self.budget:
                return math.inf
            pilot = self._pilot(family, params)
            if pilot is None:
                return None
            unit = self.pilot_seconds[family] = pilot / cost
        return None if unit is None else unit * cost * _ESTIMATE_MARGIN

    def _pilot(self, family: str, params: dict[str, Any]) -> float | None:
        """A fold's seconds extrapolated from a fit on a few rows; None if that fit fails."""
        x = self.data.x_train.iloc[self.pilot_rows]
        y = self.data.y_train.iloc[self.pilot_rows]
        started = time.perf_counter()
        try:
            estimator = _estimator(self.task, family, self.seed, params)
            build_pipeline(self.data.kinds, estimator).fit(x, y).predict(x.iloc[: len(x) // 2])
        except _TRIAL_ERRORS:
            return None
        seconds = time.perf_counter() - started
        return seconds * float((self.fold_rows / len(x)) ** self.families[family].growth)

    def _trial(
        self, family: str, params: dict[str, Any], *, abortable: bool
    ) -> tuple[Trial, list[float], bool]:
        """Cross-validate one candidate: (its trial, seconds per fold, whether it was cut short)."""
        x, y = self.data.x_train, self.data.y_train
        started = time.perf_counter()
        scores: list[float] = []
        seconds: list[float] = []
        try:
            for done, (train, val) in enumerate(self.folds, start=1):
                t0 = time.perf_counter()
                estimator = _estimator(self.task, family, self.seed, params)
                pipeline = build_pipeline(self.data.kinds, estimator).fit(
                    x.iloc[train], y.iloc[train]
                )
                scores.append(_metric(self.metric, pipeline, x.iloc[val], y.iloc[val]))
                seconds.append(time.perf_counter() - t0)
                rest = float(np.mean(seconds)) * (_FOLDS - done)
                refit = max(self._reserve(), float(np.mean(seconds)) * self._refit_factor(family))
                if abortable and done < _FOLDS and rest + refit > self._left():
                    error = f"stopped after {done} of {_FOLDS} folds to keep to the budget"
                    return self._trial_of(family, params, None, started, error), seconds, True
        except _TRIAL_ERRORS as exc:
            error = f"{type(exc).__name__}: {exc}"
            return self._trial_of(family, params, None, started, error), seconds, False
        score = float(np.mean(scores))
        return self._trial_of(family, params, score, started, None), seconds, False

    @staticmethod
    def _trial_of(
        family: str, params: dict[str, Any], score: float | None, started: float, error: str | None
    ) -> Trial:
        return Trial(family, json_safe(params), score, time.perf_counter() - started, error)

    def _record(
        self, family: str, params: dict[str, Any], trial: Trial, seconds: list[float], cut: bool
    ) -> None:
        if seconds:
            unit = max(seconds) / self.families[family].cost(params)
            self.unit_seconds[family] = max(self.unit_seconds.get(family, 0.0), unit)
        if cut:
            self.cut += 1
        elif trial.error is not None:
            self.failures[family] = self.failures.get(family, 0) + 1
            if self.failures[family] >= _MAX_FAILURES:
                self.dropped[family] = "failing"
        higher = METRICS[self.task][self.metric]
        utility = None if trial.score is None else trial.score if higher else -trial.score
        self.records.append(_Record(trial, params, seconds, utility))

    def _expected_trials(self) -> int:
        """How many trials the budget should allow at the pace so far (a progress total)."""
        done = len(self.records)
        pace = sum(r.trial.fit_seconds for r in self.records) / done
        expected = done + int(max(0.0, self._left()) / max(pace, 1e-3))
        return max(done, min(self.space, expected))


def search_tabular(
    frame: pd.DataFrame,
    spec: TrainingSpec,
    task: TabularTask,
    report: ProgressReporter = discard_progress,
) -> Fitted:
    """Choose and fit a tabular model within ``spec.time_budget_seconds`` (wall-clock seconds).

    Options (``spec.options``): ``max_trials`` caps the trials (with a budget
    that is not reached, the result is then the same for a seed);
    ``estimators`` restricts the families searched; ``estimator`` fits one
    family once, with its defaults updated by ``params``, and no search.
    The first trial always runs, even if it alone overruns the budget.
    """
    started = time.perf_counter()
    task = TabularTask(task)
    if not spec.time_budget_seconds > 0:
        raise ValueError(f"the time budget must be > 0 s, not {spec.time_budget_seconds!r}")
    metric, families, cap = _choices(task, spec)
    data = _prepare(frame, spec, task)
    caught: list[str] = []
    # One BLAS/OpenMP thread per fit keeps fit times predictable, which the budget
    # relies on; on a busy two-core host a second OpenMP thread spinning for its
    # turn made one gradient-boosting fit some fifty times slower.
    with threadpool_limits(limits=1), _quiet_convergence(caught):
        if spec.options.get("estimator") is not None:
            family, params = _single(spec, task, families, data)
            search = None
        else:
            search = _Search(data, task, metric, families, spec, started)
            stopped = search.run(cap, report)
            best = search.best()
            if best is None:
                why = search.records[0].trial.error if search.records else search.dropped
                raise DatasetError(f"no model could be fitted: {why}")
            family, params = best.trial.estimator, best.params
        refit_started = time.perf_counter()
        estimator = _estimator(task, family, spec.seed, params)
        pipeline = build_pipeline(data.kinds, estimator).fit(data.x_train, data.y_train)
        fit_seconds = time.perf_counter() - refit_started
        metrics = holdout_scores(pipeline, task, data.x_test, data.y_test)
    if search is None:
        score = -metrics["mae"] if metric == "neg_mae" else metrics.get(metric)
        leaderboard = [Trial(family, json_safe(params), score, fit_seconds)]
        stopped, dropped = "exhausted", {}
    else:
        leaderboard = search.leaderboard()
        metrics["cv_score"] = float(leaderboard[0].score or 0.0)
        dropped = search.dropped
    report(len(leaderboard), len(leaderboard), f"{family} refitted")
    return Fitted(
        model=TabularPredictor(pipeline, task, list(data.kinds)),
        estimator=family,
        params=json_safe(params),
        metrics=metrics,
        fit_seconds=fit_seconds,
        leaderboard=leaderboard,
        details=json_safe(
            {
                "budget_seconds": spec.time_budget_seconds,
                "elapsed_seconds": time.perf_counter() - started,
                "trials": len(leaderboard),
                "metric": metric,
                "stopped": stopped,
                "dropped": dropped,
                "rows": {"train": len(data.y_train), "holdout": len(data.y_test)},
                "warnings": sorted(set(caught)),
            }
        ),
    )


def _single(
    spec: TrainingSpec, task: TabularTask, families: dict[str, Family], data: _Data
) -> tuple[str, dict[str, Any]]:
    """The family and parameters ``options["estimator"]`` and ``options["params"]`` ask for."""
    family = str(spec.options["estimator"])
    extra = spec.options.get("params") or {}
    if not isinstance(extra, Mapping):
        raise ValueError(f"params must be an object of parameter values, not {extra!r}")
    smallest = data.y_train.value_counts().min()
    if task == TabularTask.CLASSIFICATION and family == "svm" and smallest < _CALIBRATION_FOLDS:
        raise DatasetError(
            f"the svm needs at least {_CALIBRATION_FOLDS} training rows of every class",
            column=spec.target,
        )
    return family, {**families[family].defaults, **extra}
