"""The budgeted random search: cross-validated trials, timed so the budget leaves room to refit."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from aia_workers.backbone.progress import ProgressReporter
from aia_workers.ml.budget import BudgetExceeded
from aia_workers.ml.trainers.automl.ensemble import ENSEMBLE_CANDIDATES
from aia_workers.ml.trainers.automl.metrics import METRICS, score_predictions
from aia_workers.ml.trainers.automl.spaces import CALIBRATION_FOLDS, Family, build_estimator
from aia_workers.ml.trainers.fitted import TrainingSpec, Trial, json_safe
from aia_workers.ml.trainers.tabular import TabularSplit, TabularTask, build_pipeline

__all__ = ["Search"]

_FOLDS = 3


# Tried first: histogram boosting's defaults are a strong model on most tables,
# so even a budget that allows one trial serves one.
_FIRST = "hist_gradient_boosting"


def _draws(families: Mapping[str, Family], seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every family's defaults first, then seeded random untried points until none remain."""
    for name in sorted(families, key=lambda n: n != _FIRST):
        yield name, dict(families[name].defaults)
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
# The search leaves time to refit this many of its best trials: the final ensemble's members.
_REFITS_RESERVED = 3


@dataclass(slots=True)
class _Record:
    trial: Trial
    params: dict[str, Any]  # as drawn (tuples kept), for the refit
    folds: list[float]  # seconds per completed fold
    utility: float | None  # the score, negated when lower is better
    # Out-of-fold predictions on every training row (class probabilities in
    # ``Search.classes`` order, or values), when every fold was scored.
    predictions: np.ndarray | None


class Search:
    """Random search state: trials so far, per-family timings, families dropped and why."""

    def __init__(
        self,
        data: TabularSplit,
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
        classification = task == TabularTask.CLASSIFICATION
        self.classes = np.unique(data.y_train.to_numpy()) if classification else np.array([])
        self.fold_rows = float(np.mean([len(train) for train, _ in self.folds]))
        pilot = np.random.default_rng(spec.seed).permutation(self.folds[0][0])
        self.pilot_rows = pilot[: min(_PILOT_ROWS, len(pilot))]
        self.records: list[_Record] = []
        # The best trial's last fold model: what serves if the refit cannot finish in time.
        self.fallback: Pipeline | None = None
        self.interrupted = False  # the run's hard stop ended the search: no time to refit
        self.unit_seconds: dict[str, float] = {}  # slowest fold seconds per unit of cost
        self.failures: dict[str, int] = {}
        self.pilot_seconds: dict[str, float] = {}  # a pilot's fold estimate per unit of cost
        self.dropped: dict[str, str] = {}  # family → why it is no longer tried
        self.skipped = 0  # candidates not started: they would have overrun the budget
        self.cut = 0  # trials stopped between folds for the same reason
        self.space = sum(len(f.points()) + 1 for f in families.values())
        if task == TabularTask.CLASSIFICATION and "svm" in families:
            smallest = min(data.y_train.iloc[train].value_counts().min() for train, _ in self.folds)
            if smallest < CALIBRATION_FOLDS:
                self.dropped["svm"] = f"a class has fewer than {CALIBRATION_FOLDS} rows in a fold"

    def run(self, cap: int | None, report: ProgressReporter) -> str:
        """Try candidates until the cap, the budget or the space runs out; says which.

        Interrupted by the run's hard stop (BudgetExceeded) once a trial has
        a model to fall back on, the search ends as ``interrupted``.
        """
        try:
            return self._run(cap, report)
        except BudgetExceeded:
            if self.fallback is None:
                raise
            self.interrupted = True
            return "budget"

    def _run(self, cap: int | None, report: ProgressReporter) -> str:
        for family, params in _draws(self.families, self.seed):
            if family in self.dropped:
                continue
            if self.records and self._left() <= self._reserve():
                return "budget"
            if self.records and not self._affordable(family, params):
                self.skipped += 1
                continue
            first = not self.records
            trial, seconds, cut, fold_model, predictions = self._trial(
                family, params, abortable=not first
            )
            self._record(family, params, trial, seconds, cut, predictions)
            if fold_model is not None and self.best() is self.records[-1]:
                self.fallback = fold_model
            score = self.records[-1].trial.score
            message = f"{family} {score:.4f}" if score is not None else f"{family} failed"
            total = min(cap, self.space) if cap is not None else self._expected_trials()
            report(len(self.records), total, message)
            if cap is not None and len(self.records) >= cap:
                return "max_trials"
        return "budget" if self.skipped or self.cut else "exhausted"

    def best(self) -> _Record | None:
        """The first of the best-scoring trials, if any trial succeeded."""
        ranked = self.ranked()
        return ranked[0] if ranked and ranked[0].utility is not None else None

    def leaderboard(self) -> list[Trial]:
        """Every trial, best first; failed and cut-short ones last, in the order they ran."""
        return [r.trial for r in self.ranked()]

    def ranked(self) -> list[_Record]:
        """Every trial, best first; failed and cut-short ones last, in the order they ran."""
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
        """Expected seconds to refit the best few candidates so far on the whole training split."""
        best = [r for r in self.ranked() if r.utility is not None][:_REFITS_RESERVED]
        return sum(self.refit_seconds(r) for r in best)

    def refit_seconds(self, record: _Record) -> float:
        """Expected seconds to refit ``record``'s candidate on the whole training split."""
        return float(np.mean(record.folds)) * self._refit_factor(record.trial.estimator)

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
            estimator = build_estimator(self.task, family, self.seed, params)
            build_pipeline(self.data.kinds, estimator).fit(x, y).predict(x.iloc[: len(x) // 2])
        except _TRIAL_ERRORS:
            return None
        seconds = time.perf_counter() - started
        return seconds * float((self.fold_rows / len(x)) ** self.families[family].growth)

    def _trial(
        self, family: str, params: dict[str, Any], *, abortable: bool
    ) -> tuple[Trial, list[float], bool, Pipeline | None, np.ndarray | None]:
        """Cross-validate one candidate.

        Returns its trial, the seconds of each fold, whether it was cut short,
        and, when every fold was scored, the last fold's fitted model and the
        out-of-fold predictions.
        """
        x, y = self.data.x_train, self.data.y_train
        started = time.perf_counter()
        scores: list[float] = []
        seconds: list[float] = []
        pipeline: Pipeline | None = None
        shape = (len(y), len(self.classes)) if len(self.classes) else (len(y),)
        predictions = np.zeros(shape)
        try:
            for done, (train, val) in enumerate(self.folds, start=1):
                t0 = time.perf_counter()
                estimator = build_estimator(self.task, family, self.seed, params)
                pipeline = build_pipeline(self.data.kinds, estimator).fit(
                    x.iloc[train], y.iloc[train]
                )
                predictions[val] = self._predict(pipeline, x.iloc[val])
                scores.append(
                    score_predictions(
                        self.metric, self.task, y.iloc[val], predictions[val], self.classes
                    )
                )
                seconds.append(time.perf_counter() - t0)
                rest = float(np.mean(seconds)) * (_FOLDS - done)
                refit = max(self._reserve(), float(np.mean(seconds)) * self._refit_factor(family))
                if abortable and done < _FOLDS and rest + refit > self._left():
                    error = f"stopped after {done} of {_FOLDS} folds to keep to the budget"
                    trial = self._trial_of(family, params, None, started, error)
                    return trial, seconds, True, None, None
        except _TRIAL_ERRORS as exc:
            error = f"{type(exc).__name__}: {exc}"
            return self._trial_of(family, params, None, started, error), seconds, False, None, None
        trial = self._trial_of(family, params, float(np.mean(scores)), started, None)
        return trial, seconds, False, pipeline, predictions

    def _predict(self, pipeline: Pipeline, x: Any) -> np.ndarray:
        """Values, or class probabilities in ``self.classes`` order (a fold may lack a class)."""
        if self.task == TabularTask.REGRESSION:
            return np.asarray(pipeline.predict(x), dtype=float)
        probabilities = np.zeros((len(x), len(self.classes)))
        columns = np.searchsorted(self.classes, np.asarray(pipeline.classes_))
        probabilities[:, columns] = pipeline.predict_proba(x)
        return probabilities

    @staticmethod
    def _trial_of(
        family: str, params: dict[str, Any], score: float | None, started: float, error: str | None
    ) -> Trial:
        return Trial(family, json_safe(params), score, time.perf_counter() - started, error)

    def _record(
        self,
        family: str,
        params: dict[str, Any],
        trial: Trial,
        seconds: list[float],
        cut: bool,
        predictions: np.ndarray | None,
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
        self.records.append(_Record(trial, params, seconds, utility, predictions))
        # Only the best few can join the ensemble: the rest's predictions (rows
        # times classes, per trial) would only hold memory.
        for record in self.ranked()[ENSEMBLE_CANDIDATES:]:
            record.predictions = None

    def _expected_trials(self) -> int:
        """How many trials the budget should allow at the pace so far (a progress total)."""
        done = len(self.records)
        pace = sum(r.trial.fit_seconds for r in self.records) / done
        expected = done + int(max(0.0, self._left()) / max(pace, 1e-3))
        return max(done, min(self.space, expected))
