"""Classification and regression on tables: sound preprocessing, several estimators.

Free of Celery: the ``ml`` tasks call these functions, and tests call them
directly on scikit-learn's bundled datasets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from sklearn.svm import SVC, SVR

from aia_workers.ml.contracts.tables import ColumnKind, DatasetError

__all__ = [
    "ESTIMATORS",
    "MIN_ROWS",
    "TabularSplit",
    "TabularTask",
    "TrainedModel",
    "build_pipeline",
    "estimator_catalogue",
    "holdout_scores",
    "prepare_split",
    "train_tabular",
]

# Fewer rows with a target than this are too few to split into training and holdout.
MIN_ROWS = 10
# Histogram boosting splits on at most 255 codes per categorical column (its bins,
# one of which is kept for missing values).
_BOOSTING_CATEGORIES = 254


class TabularTask(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


def _classifiers(seed: int) -> dict[str, BaseEstimator]:
    return {
        "logistic_regression": LogisticRegression(max_iter=2000, random_state=seed),
        "random_forest": RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1),
        "hist_gradient_boosting": HistGradientBoostingClassifier(random_state=seed),
        # Calibrated for class probabilities (SVC's own probability= is deprecated).
        "svm": CalibratedClassifierCV(SVC(random_state=seed), ensemble=False),
    }


def _regressors(seed: int) -> dict[str, BaseEstimator]:
    return {
        "ridge": Ridge(),
        "random_forest": RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1),
        "hist_gradient_boosting": HistGradientBoostingRegressor(random_state=seed),
        "svm": SVR(),
    }


ESTIMATORS: Mapping[TabularTask, tuple[str, ...]] = {
    TabularTask.CLASSIFICATION: tuple(_classifiers(0)),
    TabularTask.REGRESSION: tuple(_regressors(0)),
}


@dataclass
class TrainedModel:
    task: TabularTask
    estimator: str
    pipeline: Pipeline
    features: list[str]
    metrics: dict[str, float]
    fit_seconds: float
    params: dict[str, Any] = field(default_factory=dict)


# Dates become numbers a model can use: year, month, day, weekday, hour.
_DATE_PARTS = 5


def _date_parts(frame: pd.DataFrame) -> np.ndarray:
    parts = []
    for column in frame.columns:
        when = pd.to_datetime(frame[column], errors="coerce", utc=True)
        parts += [when.dt.year, when.dt.month, when.dt.day, when.dt.day_of_week, when.dt.hour]
    return np.column_stack([p.to_numpy(dtype=float, na_value=np.nan) for p in parts])


def build_pipeline(kinds: Mapping[str, ColumnKind], estimator: BaseEstimator) -> Pipeline:
    """Prepare columns by kind, then ``estimator``.

    Most estimators get imputed, scaled numbers and one-hot encoded categories.
    Histogram gradient boosting gets its own preparation (see ``_boosting_parts``):
    it bins numbers itself, learns where missing values go, and splits on
    categories natively, which one-hot columns would hide from it.
    """
    numeric = [c for c, k in kinds.items() if k == ColumnKind.NUMERIC]
    categorical = [c for c, k in kinds.items() if k in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)]
    dates = [c for c, k in kinds.items() if k == ColumnKind.DATETIME]
    if not (numeric or categorical or dates):
        raise DatasetError("no usable feature columns (numeric, categorical, boolean or dates)")
    if isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        native = _boosting_parts(numeric, categorical, dates)
        # The categories come out of the transformer right after the numbers.
        mask = [False] * len(numeric) + [True] * len(categorical)
        mask += [False] * _DATE_PARTS * len(dates)
        estimator.set_params(categorical_features=mask if categorical else None)
        return Pipeline([("prepare", ColumnTransformer(native)), ("model", estimator)])
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(
            (
                "numeric",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median")),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    if categorical:
        parts.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                categorical,
            )
        )
    if dates:
        parts.append(
            (
                "dates",
                Pipeline(
                    [
                        ("parts", FunctionTransformer(_date_parts)),
                        ("impute", SimpleImputer(strategy="median")),
                        ("scale", StandardScaler()),
                    ]
                ),
                dates,
            )
        )
    return Pipeline([("prepare", ColumnTransformer(parts)), ("model", estimator)])


def _boosting_parts(
    numeric: list[str], categorical: list[str], dates: list[str]
) -> list[tuple[str, Any, list[str]]]:
    """Histogram boosting's preparation: numbers as they are, categories as codes.

    Missing numbers stay NaN, which the trees route on their own. Categories
    become integer codes, missing and unseen ones NaN; the rarest are pooled so
    that no column has more codes than the trees have bins.
    """
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("numeric", "passthrough", numeric))
    if categorical:
        encode = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            max_categories=_BOOSTING_CATEGORIES,
        )
        parts.append(("categorical", encode, categorical))
    if dates:
        parts.append(("dates", FunctionTransformer(_date_parts), dates))
    return parts


@dataclass(frozen=True, slots=True)
class TabularSplit:
    """Checked feature columns (by kind) and target, split into training and holdout rows."""

    x_train: pd.DataFrame
    y_train: pd.Series
    x_test: pd.DataFrame
    y_test: pd.Series
    kinds: dict[str, ColumnKind]


def prepare_split(
    frame: pd.DataFrame,
    *,
    target: str | None,
    task: TabularTask,
    kinds: Mapping[str, ColumnKind],
    features: Sequence[str] | None,
    seed: int,
    test_size: float,
) -> TabularSplit:
    """Checked features and target, split into training and holdout rows.

    The features are ``features``, or every column but the target; text columns
    are left out. DatasetError, naming the column, for a missing target or
    feature, a feature of unknown kind, a regression target that is not
    numeric, a single target value, or fewer than ``MIN_ROWS`` rows with a target.
    """
    if not target or target not in frame.columns:
        raise DatasetError(f"there is no column {target!r} to predict", column=target)
    feature_kinds: dict[str, ColumnKind] = {}
    for column in features or list(frame.columns):
        if column == target:
            continue
        if column not in frame.columns:
            raise DatasetError(f"there is no feature column {column!r}", column=column)
        if column not in kinds:
            raise DatasetError(f"the kind of column {column!r} is not known", column=column)
        if kinds[column] != ColumnKind.TEXT:
            feature_kinds[column] = ColumnKind(kinds[column])
    y = frame[target]
    if task == TabularTask.REGRESSION:
        y = pd.to_numeric(y, errors="coerce")
        if y.isna().all():
            raise DatasetError(f"the target {target!r} is not numeric", column=target)
    keep = y.notna()
    x, y = frame.loc[keep, list(feature_kinds)], y[keep]
    if y.nunique() < 2:
        raise DatasetError(f"the target {target!r} has a single value", column=target)
    if len(y) < MIN_ROWS:
        raise DatasetError(f"{len(y)} rows with a target are too few to split", column=target)
    stratify = y if task == TabularTask.CLASSIFICATION and y.value_counts().min() >= 2 else None
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=stratify
    )
    return TabularSplit(x_train, y_train, x_test, y_test, feature_kinds)


def train_tabular(
    frame: pd.DataFrame,
    *,
    target: str,
    task: TabularTask,
    kinds: Mapping[str, ColumnKind],
    estimator: str,
    features: list[str] | None = None,
    seed: int = 0,
    test_size: float = 0.2,
) -> TrainedModel:
    """Fit ``estimator`` on a training split and score it on the held-out rest."""
    split = prepare_split(
        frame,
        target=target,
        task=task,
        kinds=kinds,
        features=features,
        seed=seed,
        test_size=test_size,
    )
    catalogue = _classifiers(seed) if task == TabularTask.CLASSIFICATION else _regressors(seed)
    if estimator not in catalogue:
        known = ", ".join(catalogue)
        raise ValueError(f"unknown estimator {estimator!r} for {task}; known: {known}")
    pipeline = build_pipeline(split.kinds, catalogue[estimator])
    started = time.perf_counter()
    pipeline.fit(split.x_train, split.y_train)
    fit_seconds = time.perf_counter() - started
    metrics = _scores(pipeline, task, split.x_test, split.y_test)
    return TrainedModel(
        task,
        estimator,
        pipeline,
        list(split.kinds),
        metrics,
        fit_seconds,
        params=catalogue[estimator].get_params(),
    )


def _scores(
    pipeline: Pipeline, task: TabularTask, x: pd.DataFrame, y: pd.Series
) -> dict[str, float]:
    predicted = pipeline.predict(x)
    if task == TabularTask.REGRESSION:
        return {
            "r2": float(r2_score(y, predicted)),
            "mae": float(mean_absolute_error(y, predicted)),
            "rmse": float(np.sqrt(mean_squared_error(y, predicted))),
        }
    scores = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted, average="macro")),
    }
    probabilities = pipeline.predict_proba(x)
    classes = pipeline.classes_
    if len(classes) == 2:
        scores["roc_auc"] = float(roc_auc_score(y, probabilities[:, 1]))
    elif len(set(y)) == len(classes):
        scores["roc_auc"] = float(roc_auc_score(y, probabilities, multi_class="ovr"))
    return scores


def estimator_catalogue(task: TabularTask, seed: int) -> dict[str, BaseEstimator]:
    """Fresh, unfitted estimators by name for ``task``: those ``train_tabular`` fits."""
    return _classifiers(seed) if task == TabularTask.CLASSIFICATION else _regressors(seed)


def holdout_scores(
    pipeline: Pipeline, task: TabularTask, x: pd.DataFrame, y: pd.Series
) -> dict[str, float]:
    """A fitted pipeline's metrics on ``x``, ``y``.

    Classification: accuracy, f1 (macro) and roc_auc (when computable), all in
    [0, 1]; regression: r2 (unitless), mae and rmse (in the target's units).
    """
    return _scores(pipeline, task, x, y)
