"""Anomaly detection on tables: Isolation Forest or One-Class SVM, checked against labels if any.

Both detectors are unsupervised. A target column, when given, only marks known
anomalies: it is never a feature, and serves to score each detector and pick
the better one.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.svm import OneClassSVM

from aia_workers.backbone.progress import ProgressReporter, discard_progress
from aia_workers.ml.budget import BudgetExceeded, fit_deadline
from aia_workers.ml.contracts.options import ANOMALY_ESTIMATORS
from aia_workers.ml.contracts.tables import ColumnKind, DatasetError
from aia_workers.ml.trainers.fitted import Fitted, TrainingSpec, Trial, json_safe
from aia_workers.ml.trainers.staged import staged_fit
from aia_workers.ml.trainers.tabular import build_pipeline

__all__ = ["ESTIMATORS", "AnomalyDetector", "parse_contamination", "train_anomaly_detector"]

ESTIMATORS = ANOMALY_ESTIMATORS
_SVM_DEFAULT_NU = 0.05
# Kernel SVM training grows roughly quadratically with rows; a seeded sample keeps it bounded.
_SVM_MAX_ROWS = 5_000
_MIN_ROWS = 10
_ANOMALY = frozenset({"1", "1.0", "true", "t", "yes", "y", "anomaly", "anomalous", "outlier"})
_NORMAL = frozenset({"0", "0.0", "false", "f", "no", "n", "normal", "inlier"})


class AnomalyDetector:
    """A fitted detector; ``score`` > 0 means flagged, and higher is more anomalous."""

    def __init__(self, pipeline: Pipeline, features: list[str]) -> None:
        self.pipeline = pipeline
        self.features = features

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Negated ``decision_function``: unitless, 0 at the detector's threshold."""
        for column in self.features:
            if column not in frame.columns:
                raise DatasetError(f"there is no column {column!r}", column=column)
        return -np.asarray(self.pipeline.decision_function(frame[self.features]), dtype=float)

    def predict_rows(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        if len(frame) == 0:
            return []
        return [
            {
                "anomaly": bool(s > 0),
                "score": float(s),
                "prediction": "anomaly" if s > 0 else "normal",
            }
            for s in self.scores(frame)
        ]


def parse_contamination(value: object) -> float | Literal["auto"]:
    """The expected anomaly fraction: "auto" (None) or a number in (0, 0.5]."""
    if value is None or value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 0.5:
        raise ValueError(f'contamination must be "auto" or a number in (0, 0.5], not {value!r}')
    return float(value)


def train_anomaly_detector(
    frame: pd.DataFrame, spec: TrainingSpec, report: ProgressReporter = discard_progress
) -> Fitted:
    """Fit a detector on every row's features; with labels, fit both and keep the best F1.

    Options: ``contamination`` ("auto" or a fraction in (0, 0.5]; the One-Class
    SVM's ``nu`` is that fraction, or 0.05 under "auto") and ``estimator``
    (one of ``ESTIMATORS``) to fit only that one.
    """
    started = time.perf_counter()
    contamination = parse_contamination(spec.options.get("contamination"))
    forced = spec.options.get("estimator")
    if forced is not None and forced not in ESTIMATORS:
        raise ValueError(f"unknown anomaly estimator {forced!r}; known: {', '.join(ESTIMATORS)}")
    kinds = _feature_kinds(frame, spec)
    x = frame[list(kinds)]
    if len(x) < _MIN_ROWS:
        raise DatasetError(f"{len(x)} rows are too few to learn what is normal")
    labels = _labels(frame, spec.target) if spec.target else None
    if forced is not None:
        names = [str(forced)]
    else:
        names = list(ESTIMATORS) if labels is not None else ["isolation_forest"]

    fitted: dict[str, tuple[Pipeline, np.ndarray]] = {}
    leaderboard: list[Trial] = []
    last_cost = 0.0
    cuts: dict[str, dict[str, Any] | None] = {}
    for step, name in enumerate(names):
        estimator, params = _estimator(name, contamination, spec.seed)
        if fitted and time.perf_counter() - started + last_cost > spec.time_budget_seconds:
            skipped = f"skipped: the {spec.time_budget_seconds:g} s budget would be overrun"
            leaderboard.append(Trial(name, params, None, 0.0, skipped))
            continue
        report(step, len(names), f"fitting {name}")
        t0 = time.perf_counter()
        pipeline = build_pipeline(kinds, estimator)
        try:
            with fit_deadline(started + spec.time_budget_seconds):
                cuts[name] = staged_fit(pipeline, _sample(x, name, spec.seed))
            scores = AnomalyDetector(pipeline, list(kinds)).scores(x)
        except BudgetExceeded:
            # The run's hard stop: a detector already fitted can still serve.
            if not fitted:
                raise
            leaderboard.append(Trial(name, params, None, 0.0, "stopped: the time budget ran out"))
            break
        last_cost = time.perf_counter() - t0
        fitted[name] = (pipeline, scores)
        score = _f1(labels, scores) if labels is not None else None
        leaderboard.append(Trial(name, params, score, last_cost))
    report(len(names), len(names), "done")

    ranked = [t for t in leaderboard if t.error is None]
    best = max(ranked, key=lambda t: -math.inf if t.score is None else t.score)
    pipeline, scores = fitted[best.estimator]
    flagged = scores > 0
    details: dict[str, Any] = {
        "features": list(kinds),
        "anomaly_rate": float(flagged.mean()),
        "flagged_rows": int(flagged.sum()),
        "rows": len(x),
        "score_meaning": "higher is more anomalous; above 0 is flagged",
        "deadline_cut": cuts.get(best.estimator),
    }
    if labels is not None:
        known = labels.notna().to_numpy()
        truth = labels[known].astype(int).to_numpy()
        metrics = {
            "precision": float(precision_score(truth, flagged[known], zero_division=0)),
            "recall": float(recall_score(truth, flagged[known], zero_division=0)),
            "f1": float(f1_score(truth, flagged[known], zero_division=0)),
            "roc_auc": float(roc_auc_score(truth, scores[known])),
        }
        details |= {"labelled_rows": int(known.sum()), "known_anomalies": int(truth.sum())}
    else:
        metrics = {"anomaly_rate": float(flagged.mean())}
    if best.estimator == "one_class_svm" and len(x) > _SVM_MAX_ROWS:
        details["svm_sample_rows"] = _SVM_MAX_ROWS
    return Fitted(
        model=AnomalyDetector(pipeline, list(kinds)),
        estimator=best.estimator,
        params=best.params,
        metrics=metrics,
        fit_seconds=time.perf_counter() - started,
        leaderboard=leaderboard,
        details=json_safe(details),
    )


def _estimator(
    name: str, contamination: float | Literal["auto"], seed: int
) -> tuple[BaseEstimator, dict[str, Any]]:
    if name == "isolation_forest":
        params: dict[str, Any] = {"n_estimators": 200, "contamination": contamination}
        return IsolationForest(**params, random_state=seed, n_jobs=1), params
    nu = _SVM_DEFAULT_NU if contamination == "auto" else contamination
    params = {"nu": nu, "gamma": "scale", "kernel": "rbf"}
    return OneClassSVM(**params), params


def _sample(x: pd.DataFrame, name: str, seed: int) -> pd.DataFrame:
    if name != "one_class_svm" or len(x) <= _SVM_MAX_ROWS:
        return x
    return x.sample(_SVM_MAX_ROWS, random_state=seed)


def _feature_kinds(frame: pd.DataFrame, spec: TrainingSpec) -> dict[str, ColumnKind]:
    chosen = spec.features or [c for c in frame.columns if c != spec.target]
    for column in chosen:
        if column not in frame.columns:
            raise DatasetError(f"there is no column {column!r}", column=column)
    # Free text has no distance a detector could use; a column of unknown kind is skipped too.
    kinds = {
        c: spec.kinds[c]
        for c in chosen
        if c != spec.target and spec.kinds.get(c, ColumnKind.TEXT) != ColumnKind.TEXT
    }
    if not kinds:
        raise DatasetError("no usable feature columns (numeric, categorical, boolean or dates)")
    return kinds


def _labels(frame: pd.DataFrame, target: str) -> pd.Series:
    """1.0 for a known anomaly, 0.0 for known normal, NaN where unlabelled."""
    if target not in frame.columns:
        raise DatasetError(f"there is no label column {target!r}", column=target)
    values: list[float] = []
    for row, value in enumerate(frame[target].tolist(), start=1):
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        text = "" if missing else str(value).strip().lower()
        if text in _ANOMALY:
            values.append(1.0)
        elif text in _NORMAL:
            values.append(0.0)
        elif not text:
            values.append(math.nan)
        else:
            raise DatasetError(
                f"row {row} of {target!r} holds {value!r}; expected 1/true/anomaly "
                "or 0/false/normal",
                column=target,
                row=row,
            )
    labels = pd.Series(values, index=frame.index, dtype=float)
    if labels.nunique() < 2:
        raise DatasetError(
            f"the label column {target!r} needs both known anomalies and normal rows",
            column=target,
        )
    return labels


def _f1(labels: pd.Series | None, scores: np.ndarray) -> float | None:
    if labels is None:
        return None
    known = labels.notna().to_numpy()
    truth = labels[known].astype(int).to_numpy()
    return float(f1_score(truth, scores[known] > 0, zero_division=0))
