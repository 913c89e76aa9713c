"""AutoML quality: AIA's search against HistGradientBoosting defaults and FLAML, same budget.

Five tabular datasets, each made with a fixed seed and split once into
training rows and held-out rows (25 %):

* ``digits``: scikit-learn's 8x8 digit images, ten classes, accuracy;
* ``noisy``: ``make_classification`` with informative and redundant features
  and 10 % flipped labels, accuracy;
* ``mixed_binary``: numeric and string-categorical columns, missing values and
  an interaction between a number and a category, ROC AUC;
* ``friedman1``: ``make_friedman1``, a nonlinear benchmark function, R²;
* ``mixed_regression``: numeric and categorical columns with missing values, R².

AIA: the training rows go through a CSV round trip (``frame_from_csv``, as an
upload does) into ``search_tabular``, the function the ``ml.train`` task
calls, in this process rather than over HTTP; the held-out rows are then
scored through the fitted model's ``predict_rows``, which is what the predict
API serves. As through the API, AIA keeps 20 % of the training rows back for
its own holdout. HistGradientBoosting: default settings, categorical columns
as pandas categories (``categorical_features="from_dtype"``), fitted on all
training rows. FLAML (when importable): ``AutoML.fit`` with the same budget,
the same metric and one thread.

The goal (issue 15): AIA at least as good as HistGradientBoosting defaults and
within 0.01 of FLAML on every dataset.

    .venv/bin/python bench/automl_quality.py [--budget 30] [--datasets digits,noisy]
"""

from __future__ import annotations

import argparse
import importlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits, make_classification, make_friedman1
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split

from aia_workers.ml.contracts.tables import ColumnKind
from aia_workers.ml.trainers.automl import search_tabular
from aia_workers.ml.trainers.fitted import TrainingSpec
from aia_workers.ml.trainers.frames import classification_labels, frame_from_csv
from aia_workers.ml.trainers.tabular import TabularTask

FLAML_MARGIN = 0.01
_HOLDOUT = 0.25
_SEED = 0


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    frame: pd.DataFrame  # features and "target"; categorical columns hold strings or None
    kinds: dict[str, ColumnKind]
    task: TabularTask
    metric: str  # accuracy, roc_auc or r2


def _numeric(frame: pd.DataFrame) -> dict[str, ColumnKind]:
    return {c: ColumnKind.NUMERIC for c in frame.columns if c != "target"}


def _digits() -> Dataset:
    frame = load_digits(as_frame=True).frame
    frame.columns = [*[f"p{i}" for i in range(64)], "target"]
    return Dataset("digits", frame, _numeric(frame), TabularTask.CLASSIFICATION, "accuracy")


def _noisy() -> Dataset:
    x, y = make_classification(
        n_samples=3000,
        n_features=40,
        n_informative=10,
        n_redundant=10,
        flip_y=0.1,
        class_sep=0.8,
        random_state=1,
    )
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])]).assign(target=y)
    return Dataset("noisy", frame, _numeric(frame), TabularTask.CLASSIFICATION, "accuracy")


def _with_gaps(frame: pd.DataFrame, rng: np.random.Generator, share: float) -> pd.DataFrame:
    for column in frame.columns:
        if column != "target":
            frame[column] = frame[column].mask(rng.random(len(frame)) < share)
    return frame


def _mixed_binary() -> Dataset:
    rng = np.random.default_rng(2)
    n = 4000
    x = rng.normal(size=(n, 5))
    city = rng.choice([f"city_{i}" for i in range(8)], size=n)
    plan = rng.choice(["basic", "plus", "pro", "team"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    shop = rng.choice([f"shop_{i}" for i in range(30)], size=n)
    city_effect = dict(zip(sorted(set(city)), rng.normal(scale=1.0, size=8), strict=True))
    shop_effect = dict(zip(sorted(set(shop)), rng.normal(scale=0.6, size=30), strict=True))
    slope = {"basic": -1.0, "plus": 0.0, "pro": 1.0, "team": 2.0}
    logit = (
        0.8 * x[:, 0]
        - 0.6 * x[:, 1] ** 2
        + np.array([slope[p] for p in plan]) * x[:, 2]  # the interaction
        + np.array([city_effect[c] for c in city])
        + np.array([shop_effect[s] for s in shop])
        + 0.5 * np.sin(2 * x[:, 3])
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)])
    frame = frame.assign(city=city, plan=plan, shop=shop).astype({"city": object})
    frame = _with_gaps(frame.astype(object), rng, 0.08).assign(target=y)
    kinds = {c: ColumnKind.NUMERIC for c in frame.columns if c.startswith("x")}
    kinds |= {"city": ColumnKind.CATEGORICAL, "plan": ColumnKind.CATEGORICAL}
    kinds |= {"shop": ColumnKind.CATEGORICAL}
    return Dataset("mixed_binary", frame, kinds, TabularTask.CLASSIFICATION, "roc_auc")


def _friedman1() -> Dataset:
    x, y = make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=3)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(10)]).assign(target=y)
    return Dataset("friedman1", frame, _numeric(frame), TabularTask.REGRESSION, "r2")


def _mixed_regression() -> Dataset:
    rng = np.random.default_rng(4)
    n = 3000
    x = rng.uniform(-2, 2, size=(n, 6))
    region = rng.choice(["north", "south", "east", "west", "centre"], size=n)
    kind = rng.choice([f"type_{i}" for i in range(12)], size=n)
    region_effect = {"north": 2.0, "south": -1.0, "east": 0.5, "west": 0.0, "centre": 3.0}
    kind_effect = dict(zip(sorted(set(kind)), rng.normal(scale=2.0, size=12), strict=True))
    y = (
        3 * x[:, 0]
        + 2 * np.abs(x[:, 1])
        + x[:, 2] * x[:, 3]
        + np.array([region_effect[r] for r in region]) * (x[:, 4] > 0)
        + np.array([kind_effect[k] for k in kind])
        + rng.normal(scale=1.0, size=n)
    )
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)]).assign(region=region, kind=kind)
    frame = _with_gaps(frame.astype(object), rng, 0.05).assign(target=y)
    kinds = {c: ColumnKind.NUMERIC for c in frame.columns if c.startswith("x")}
    kinds |= {"region": ColumnKind.CATEGORICAL, "kind": ColumnKind.CATEGORICAL}
    return Dataset("mixed_regression", frame, kinds, TabularTask.REGRESSION, "r2")


DATASETS: dict[str, Callable[[], Dataset]] = {
    "digits": _digits,
    "noisy": _noisy,
    "mixed_binary": _mixed_binary,
    "friedman1": _friedman1,
    "mixed_regression": _mixed_regression,
}


def _split(data: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    stratify = data.frame["target"] if data.task == TabularTask.CLASSIFICATION else None
    train, test = train_test_split(
        data.frame, test_size=_HOLDOUT, random_state=_SEED, stratify=stratify
    )
    return train, test


def _typed(frame: pd.DataFrame, data: Dataset) -> pd.DataFrame:
    """``frame`` as an upload of it reads: CSV bytes, typed by column kind."""
    kinds = {**data.kinds, "target": ColumnKind.NUMERIC}
    if data.task == TabularTask.CLASSIFICATION:
        kinds["target"] = ColumnKind.CATEGORICAL
    typed = frame_from_csv(frame.to_csv(index=False).encode(), kinds)
    if data.task == TabularTask.CLASSIFICATION:
        typed["target"] = classification_labels(typed["target"])
    return typed


def _score(metric: str, y: pd.Series, predicted: Any, positive: Any = None) -> float:
    if metric == "accuracy":
        return float(accuracy_score(y, predicted))
    if metric == "roc_auc":
        return float(roc_auc_score(y == 1, positive))
    return float(r2_score(y, predicted))


def run_aia(
    data: Dataset, train: pd.DataFrame, test: pd.DataFrame, budget: float
) -> dict[str, Any]:
    spec = TrainingSpec(
        target="target",
        features=[],
        kinds=data.kinds,
        time_budget_seconds=budget,
        metric=data.metric,
        seed=_SEED,
    )
    started = time.perf_counter()
    fitted = search_tabular(_typed(train, data), spec, data.task)
    seconds = time.perf_counter() - started
    rows = fitted.model.predict_rows(_typed(test, data).drop(columns="target"))
    truth = _typed(test, data)["target"]
    members = fitted.details.get("ensemble") or []
    predicted = [r["prediction"] for r in rows]
    positive = None
    if data.metric == "roc_auc":
        positive = [r["probabilities"].get("1", 0.0) for r in rows]
    return {
        "score": _score(data.metric, truth, predicted, positive),
        "trials": len(fitted.leaderboard),
        # "svm+2": the best trial averaged with two others (the final ensemble).
        "estimator": fitted.estimator + (f"+{len(members) - 1}" if members else ""),
        "seconds": seconds,
    }


def _categorized(frame: pd.DataFrame, data: Dataset) -> pd.DataFrame:
    x = frame.drop(columns="target")
    for column, kind in data.kinds.items():
        x[column] = x[column].astype("category" if kind != ColumnKind.NUMERIC else float)
    return x


def run_hgb(data: Dataset, train: pd.DataFrame, test: pd.DataFrame) -> float:
    every = _categorized(data.frame, data)  # one set of categories for both splits
    x_train, x_test = every.loc[train.index], every.loc[test.index]
    model: Any
    if data.task == TabularTask.CLASSIFICATION:
        model = HistGradientBoostingClassifier(random_state=_SEED)
    else:
        model = HistGradientBoostingRegressor(random_state=_SEED)
    model.fit(x_train, train["target"])
    positive = model.predict_proba(x_test)[:, 1] if data.metric == "roc_auc" else None
    return _score(data.metric, test["target"], model.predict(x_test), positive)


def run_flaml(
    data: Dataset, train: pd.DataFrame, test: pd.DataFrame, budget: float
) -> dict[str, Any] | None:
    try:
        flaml = importlib.import_module("flaml.automl")
    except ImportError:
        return None
    every = _categorized(data.frame, data)
    x_train, x_test = every.loc[train.index], every.loc[test.index]
    automl: Any = flaml.AutoML()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(
            x_train,
            train["target"],
            task=data.task.value,
            metric=data.metric,
            time_budget=budget,
            seed=_SEED,
            n_jobs=1,
            verbose=0,
        )
        positive = automl.predict_proba(x_test)[:, 1] if data.metric == "roc_auc" else None
        predicted = automl.predict(x_test)
    trials = len(automl.config_history) if automl.config_history else 0
    return {
        "score": _score(data.metric, test["target"], predicted, positive),
        "trials": trials,
        "estimator": automl.best_estimator,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per contender")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated names")
    args = parser.parse_args()
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    for name in names:
        if name not in DATASETS:
            parser.error(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    header = (
        f"{'dataset':<17} {'metric':<8} {'AIA':>7} {'HGB':>7} {'FLAML':>7} "
        f"{'trials':>6} {'FLAML tr':>8}  {'AIA best':<24} goal"
    )
    print(f"budget {args.budget:g} s per contender")
    print(header)
    passed = 0
    for name in names:
        data = DATASETS[name]()
        train, test = _split(data)
        aia = run_aia(data, train, test, args.budget)
        hgb = run_hgb(data, train, test)
        flaml = run_flaml(data, train, test, args.budget)
        near_flaml = flaml is None or aia["score"] >= flaml["score"] - FLAML_MARGIN
        ok = aia["score"] >= hgb and near_flaml
        passed += ok
        flaml_score = f"{flaml['score']:7.4f}" if flaml else f"{'-':>7}"
        flaml_trials = f"{flaml['trials']:8d}" if flaml else f"{'-':>8}"
        print(
            f"{name:<17} {data.metric:<8} {aia['score']:7.4f} {hgb:7.4f} {flaml_score} "
            f"{aia['trials']:6d} {flaml_trials}  {aia['estimator']:<24} "
            f"{'pass' if ok else 'FAIL'}",
            flush=True,
        )
    print(f"goal met on {passed} of {len(names)}")


if __name__ == "__main__":
    main()
