"""The tabular search: quality on bundled data, the time budget, determinism, its edge cases."""

from __future__ import annotations

import json
import pickle
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, make_classification

from aia_workers.ml.budget import BudgetExceeded, hard_stop
from aia_workers.ml.contracts.tables import ColumnKind, DatasetError
from aia_workers.ml.trainers.automl import SEARCH_SPACES, Family, search_tabular
from aia_workers.ml.trainers.automl.ensemble import select_members
from aia_workers.ml.trainers.fitted import Fitted, TrainingSpec
from aia_workers.ml.trainers.tabular import TabularTask, build_pipeline, train_tabular

CLASSIFICATION = TabularTask.CLASSIFICATION
REGRESSION = TabularTask.REGRESSION


def _spec(frame: pd.DataFrame, budget: float, **extra: Any) -> TrainingSpec:
    kinds = {c: ColumnKind.NUMERIC for c in frame.columns}
    return TrainingSpec(
        target="target", features=[], kinds=kinds, time_budget_seconds=budget, **extra
    )


def _cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


def _diabetes() -> pd.DataFrame:
    return load_diabetes(as_frame=True).frame


def json_defaults(family: str) -> dict[str, Any]:
    defaults: dict[str, Any] = json.loads(
        json.dumps(SEARCH_SPACES[CLASSIFICATION][family].defaults)
    )
    return defaults


def _assert_ranked(fitted: Fitted, *, higher_is_better: bool = True) -> None:
    scores = [t.score for t in fitted.leaderboard if t.score is not None]
    assert scores == sorted(scores, reverse=higher_is_better)
    failed = [t.score is None for t in fitted.leaderboard]
    assert failed == sorted(failed)  # failures come last
    assert fitted.leaderboard[0].estimator == fitted.estimator
    assert fitted.metrics["cv_score"] == fitted.leaderboard[0].score


def test_breast_cancer_within_an_eight_second_budget() -> None:
    reports: list[tuple[int, int, str | None]] = []
    started = time.perf_counter()
    fitted = search_tabular(
        _cancer(),
        _spec(_cancer(), 8.0),
        CLASSIFICATION,
        lambda current, total, message=None: reports.append((current, total, message)),
    )
    elapsed = time.perf_counter() - started

    assert fitted.metrics["accuracy"] >= 0.93
    assert set(fitted.metrics) == {"accuracy", "f1", "roc_auc", "cv_score"}
    assert elapsed <= 8.0 * 1.1
    assert fitted.details["elapsed_seconds"] <= elapsed
    assert fitted.details["trials"] == len(fitted.leaderboard) >= 5
    assert fitted.details["metric"] == "accuracy"
    assert fitted.details["stopped"] in {"budget", "exhausted"}
    assert all(t.error is None and t.fit_seconds > 0 for t in fitted.leaderboard)
    _assert_ranked(fitted)
    json.dumps([t.as_json() for t in fitted.leaderboard])  # JSON-safe params

    # One report per trial, counting up, then the refit.
    assert [r[0] for r in reports[:-1]] == list(range(1, len(fitted.leaderboard) + 1))
    assert all(r[0] <= r[1] for r in reports)
    # Every family is tried once, with its defaults, before any is tuned;
    # histogram boosting first, the strongest default on most tables.
    families = set(SEARCH_SPACES[CLASSIFICATION])
    assert {str(r[2]).split()[0] for r in reports[:5]} == families
    assert str(reports[0][2]).startswith("hist_gradient_boosting 0.")

    rows = _cancer().drop(columns="target").head(3)
    predictions = fitted.model.predict_rows(rows)
    json.dumps(predictions)
    assert [set(p) for p in predictions] == [{"prediction", "probabilities"}] * 3
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-6 for p in predictions)
    assert pickle.loads(pickle.dumps(fitted.model)).predict_rows(rows) == predictions


def test_diabetes_r2_over_seeds() -> None:
    # 442 noisy rows: one 20 % holdout swings R² by about ±0.1, so average three.
    # A trial cap (and a budget it does not reach) makes each search repeatable.
    fits = [
        search_tabular(
            _diabetes(), _spec(_diabetes(), 60.0, seed=seed, options={"max_trials": 8}), REGRESSION
        )
        for seed in (0, 1, 2)
    ]
    assert np.mean([f.metrics["r2"] for f in fits]) >= 0.35, [f.metrics for f in fits]
    for fitted in fits:
        assert set(fitted.metrics) == {"r2", "mae", "rmse", "cv_score"}
        assert fitted.details["stopped"] == "max_trials"
        _assert_ranked(fitted)
    prediction = fits[0].model.predict_rows(_diabetes().drop(columns="target").head(1))
    assert isinstance(prediction[0]["prediction"], float)


def test_the_budget_is_honoured_on_a_large_table() -> None:
    # Cross-validating every family on 16k training rows takes minutes on two cores.
    x, y = make_classification(n_samples=20_000, n_features=20, n_informative=8, random_state=0)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(20)]).assign(target=y)
    started = time.perf_counter()
    fitted = search_tabular(frame, _spec(frame, 4.0), CLASSIFICATION)
    elapsed = time.perf_counter() - started

    assert elapsed <= 4.0 * 1.1
    assert fitted.details["stopped"] == "budget"
    assert len(fitted.leaderboard) >= 1
    assert fitted.metrics["accuracy"] > 0.7


def test_same_seed_and_trial_cap_give_the_same_result() -> None:
    spec = _spec(_cancer(), 120.0, seed=7, options={"max_trials": 7})
    first = search_tabular(_cancer(), spec, CLASSIFICATION)
    second = search_tabular(_cancer(), spec, CLASSIFICATION)

    def board(fitted: Fitted) -> list[tuple[str, Any, float | None]]:
        return [(t.estimator, t.params, t.score) for t in fitted.leaderboard]

    assert len(first.leaderboard) == 7
    assert first.details["stopped"] == "max_trials"
    assert board(first) == board(second)
    assert first.params == second.params
    rows = _cancer().drop(columns="target")
    assert first.model.predict_rows(rows) == second.model.predict_rows(rows)
    # Five families at their defaults, then two drawn points.
    defaults = [t for t in first.leaderboard if t.params == json_defaults(t.estimator)]
    assert len(defaults) == 5


def test_metric_names_are_checked_and_error_metrics_rank_low_first() -> None:
    with pytest.raises(ValueError, match="unknown metric 'f2' for classification; known: accuracy"):
        search_tabular(_cancer(), _spec(_cancer(), 5.0, metric="f2"), CLASSIFICATION)
    with pytest.raises(ValueError, match="unknown metric 'roc_auc' for regression"):
        search_tabular(_diabetes(), _spec(_diabetes(), 5.0, metric="roc_auc"), REGRESSION)

    options = {"max_trials": 4, "estimators": ["ridge", "svm"]}
    for metric, higher in (("mae", False), ("neg_mae", True), ("rmse", False)):
        fitted = search_tabular(
            _diabetes(), _spec(_diabetes(), 30.0, metric=metric, options=options), REGRESSION
        )
        assert fitted.details["metric"] == metric
        _assert_ranked(fitted, higher_is_better=higher)
        assert (fitted.metrics["cv_score"] < 0) == (metric == "neg_mae")


def test_a_failing_family_is_recorded_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ridge refuses a negative alpha when fitted: every ridge trial fails.
    broken = Family({"alpha": -1.0}, {"alpha": (-1.0, -2.0, -3.0)})
    monkeypatch.setitem(SEARCH_SPACES[REGRESSION], "ridge", broken)
    options = {"estimators": ["ridge", "hist_gradient_boosting"], "max_trials": 5}
    fitted = search_tabular(_diabetes(), _spec(_diabetes(), 30.0, options=options), REGRESSION)

    failed = [t for t in fitted.leaderboard if t.estimator == "ridge"]
    assert len(failed) == 2  # then the family is dropped
    assert all(t.score is None and t.error and "alpha" in t.error for t in failed)
    assert fitted.leaderboard[-2:] == failed
    assert fitted.details["dropped"] == {"ridge": "failing"}
    assert fitted.estimator == "hist_gradient_boosting"
    assert fitted.metrics["r2"] > 0


def test_rare_classes_leave_the_calibrated_svm_out() -> None:
    rng = np.random.default_rng(0)
    label = np.array(["a"] * 98 + ["b"] * 97 + ["rare"] * 5)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=200) + (label == "b") * 2 + (label == "rare") * 4,
            "x2": rng.normal(size=200),
            "target": label,
        }
    )
    options = {"estimators": ["logistic_regression", "svm"], "max_trials": 3}
    fitted = search_tabular(frame, _spec(frame, 30.0, options=options), CLASSIFICATION)
    assert {t.estimator for t in fitted.leaderboard} == {"logistic_regression"}
    assert "svm" in fitted.details["dropped"]
    assert set(fitted.model.predict_rows(frame.head(1))[0]["probabilities"]) == {"a", "b", "rare"}
    with pytest.raises(DatasetError, match="svm needs at least 5"):
        search_tabular(frame, _spec(frame, 30.0, options={"estimator": "svm"}), CLASSIFICATION)


def test_single_estimator_fits_once_like_train_tabular(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = build_pipeline

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr("aia_workers.ml.trainers.automl.training.build_pipeline", counting)
    frame = _cancer()
    fitted = search_tabular(
        frame, _spec(frame, 30.0, options={"estimator": "random_forest"}), CLASSIFICATION
    )
    assert len(built) == 1
    assert len(fitted.leaderboard) == 1
    assert fitted.leaderboard[0].score == fitted.metrics["accuracy"]
    assert fitted.details["trials"] == 1
    assert "cv_score" not in fitted.metrics
    direct = train_tabular(
        frame,
        target="target",
        task=CLASSIFICATION,
        kinds={c: ColumnKind.NUMERIC for c in frame.columns if c != "target"},
        estimator="random_forest",
    )
    assert fitted.metrics == direct.metrics

    options = {"estimator": "ridge", "params": {"alpha": 3.0}}
    ridge = search_tabular(_diabetes(), _spec(_diabetes(), 30.0, options=options), REGRESSION)
    assert ridge.params == {"alpha": 3.0}
    bad = {"estimator": "ridge", "params": {"alpha": -1.0}}
    with pytest.raises(ValueError, match="alpha"):
        search_tabular(_diabetes(), _spec(_diabetes(), 30.0, options=bad), REGRESSION)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"estimator": "lasso"}, "unknown estimator 'lasso'"),
        ({"estimators": ["ridge", "knn"]}, "unknown estimator 'knn'"),
        ({"max_trials": 0}, "max_trials"),
        ({"estimator": "ridge", "params": [1]}, "params"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        search_tabular(_diabetes(), _spec(_diabetes(), 5.0, options=options), REGRESSION)


@pytest.mark.parametrize(
    ("frame", "target", "task", "message"),
    [
        (pd.DataFrame({"a": range(20), "b": range(20)}), "nope", CLASSIFICATION, "no column"),
        (pd.DataFrame({"a": range(20), "b": ["x"] * 20}), "b", REGRESSION, "not numeric"),
        (pd.DataFrame({"a": range(20), "b": [1] * 20}), "b", CLASSIFICATION, "single value"),
        (pd.DataFrame({"a": range(5), "b": [0, 1, 0, 1, 0]}), "b", CLASSIFICATION, "too few"),
    ],
)
def test_unusable_targets_name_the_column(
    frame: pd.DataFrame, target: str, task: TabularTask, message: str
) -> None:
    spec = TrainingSpec(
        target=target,
        features=["a"],
        kinds={"a": ColumnKind.NUMERIC, "b": ColumnKind.NUMERIC},
        time_budget_seconds=5.0,
    )
    with pytest.raises(DatasetError, match=message) as caught:
        search_tabular(frame, spec, task)
    assert caught.value.column == target


# -- the final fit keeps to the budget ---------------------------------------------------


def _large_table() -> pd.DataFrame:
    x, y = make_classification(n_samples=20_000, n_features=20, n_informative=8, random_state=0)
    return pd.DataFrame(x, columns=[f"x{i}" for i in range(20)]).assign(target=y)


def test_one_big_forest_stops_growing_at_the_deadline() -> None:
    # A thousand trees on 16k rows take about a minute on one core; the budget is two seconds.
    frame = _large_table()
    options = {"estimator": "random_forest", "params": {"n_estimators": 1000}}
    fitted = search_tabular(frame, _spec(frame, 2.0, options=options), CLASSIFICATION)

    cut = fitted.details["deadline_cut"]
    assert cut["parameter"] == "n_estimators"
    assert cut["asked"] == 1000
    assert 0 < cut["reached"] < 1000
    assert fitted.details["stopped"] == "budget"
    assert fitted.details["served"] == "refit"
    assert fitted.metrics["accuracy"] > 0.8
    assert len(fitted.model.pipeline.named_steps["model"].estimators_) == cut["reached"]


def test_an_mlp_of_many_epochs_stops_at_the_deadline() -> None:
    frame = _cancer()
    params = {"max_epochs": 1000, "patience": 1000, "batch_size": 1}
    options = {"estimator": "mlp", "params": params}
    fitted = search_tabular(frame, _spec(frame, 1.0, options=options), CLASSIFICATION)

    cut = fitted.details["deadline_cut"]
    assert cut["parameter"] == "max_epochs"
    assert 1 <= cut["reached"] < 1000
    assert fitted.metrics["accuracy"] > 0.8


def test_an_interrupted_refit_falls_back_to_the_best_fold_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise BudgetExceeded("the refit ran past the hard stop")

    monkeypatch.setattr("aia_workers.ml.trainers.automl.training.staged_fit", interrupted)
    frame = _cancer()
    spec = _spec(frame, 30.0, options={"max_trials": 3})
    fitted = search_tabular(frame, spec, CLASSIFICATION)
    assert fitted.details["served"] == "fold_model"
    assert fitted.metrics["accuracy"] >= 0.9
    assert len(fitted.model.predict_rows(frame.drop(columns="target").head(3))) == 3
    # One estimator and no search: there is nothing smaller to serve.
    single = _spec(frame, 30.0, options={"estimator": "logistic_regression"})
    with pytest.raises(BudgetExceeded):
        search_tabular(frame, single, CLASSIFICATION)


def test_a_search_cut_by_the_hard_stop_serves_its_best_trial() -> None:
    frame = _cancer()
    # The search plans for a minute; the run's hard stop comes after three seconds.
    with hard_stop(3.0):
        fitted = search_tabular(frame, _spec(frame, 60.0), CLASSIFICATION)
    assert fitted.details["served"] == "fold_model"
    assert fitted.details["stopped"] == "budget"
    assert fitted.metrics["accuracy"] >= 0.9


def _mixed_table(rows: int, seed: int) -> tuple[pd.DataFrame, dict[str, ColumnKind]]:
    """Numbers and string categories with gaps, and a category that changes a number's slope."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    plan = rng.choice(["basic", "plus", "pro"], size=rows)
    city = rng.choice([f"city_{i}" for i in range(6)], size=rows)
    slope = pd.Series(plan).map({"basic": -1.5, "plus": 0.0, "pro": 1.5}).to_numpy()
    logit = x[:, 0] + slope * x[:, 1] + (city == "city_2") * 1.5 - 0.5 * x[:, 2] ** 2
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2"])
    frame["x0"] = frame["x0"].mask(rng.random(rows) < 0.1)
    frame["plan"] = pd.Series(plan, dtype=object).mask(rng.random(rows) < 0.1, None)
    frame["city"] = city
    frame["target"] = y
    kinds = {c: ColumnKind.NUMERIC for c in ("x0", "x1", "x2")}
    kinds |= {"plan": ColumnKind.CATEGORICAL, "city": ColumnKind.CATEGORICAL}
    return frame, kinds


def test_the_search_is_at_least_as_good_as_histogram_boosting_defaults() -> None:
    frame, kinds = _mixed_table(1200, seed=5)
    spec = TrainingSpec(
        target="target",
        features=[],
        kinds=kinds,
        time_budget_seconds=120.0,
        metric="roc_auc",
        options={"max_trials": 8},
    )
    fitted = search_tabular(frame, spec, CLASSIFICATION)
    # The same split (seed 0, 20 % holdout), one default histogram boosting fit.
    default = train_tabular(
        frame, target="target", task=CLASSIFICATION, kinds=kinds, estimator="hist_gradient_boosting"
    )
    assert fitted.details["stopped"] == "max_trials"
    assert fitted.metrics["roc_auc"] >= default.metrics["roc_auc"] - 0.002, (
        fitted.metrics,
        default.metrics,
        fitted.details["ensemble"],
    )
    assert fitted.leaderboard[0].estimator == fitted.estimator
    # Unseen and missing categories are served too.
    rows = frame.drop(columns="target").head(2).assign(plan=["enterprise", None])
    assert [set(p) for p in fitted.model.predict_rows(rows)] == [
        {"prediction", "probabilities"}
    ] * 2


def test_histogram_boosting_splits_on_categories_natively() -> None:
    frame, kinds = _mixed_table(300, seed=1)
    model = train_tabular(
        frame, target="target", task=CLASSIFICATION, kinds=kinds, estimator="hist_gradient_boosting"
    )
    boosting = model.pipeline.named_steps["model"]
    assert list(boosting.is_categorical_) == [False, False, False, True, True]
    # Other families still see one-hot columns.
    forest = train_tabular(
        frame, target="target", task=CLASSIFICATION, kinds=kinds, estimator="random_forest"
    )
    assert forest.pipeline.named_steps["model"].n_features_in_ >= 3 + 3 + 6


def test_an_ensemble_serves_only_when_it_beats_the_best_trial_out_of_fold() -> None:
    y = pd.Series([0, 1] * 50)
    truth = np.column_stack([1 - y, y]).astype(float)
    # Two half-wrong models whose errors differ: their average is right more often.
    first, second = truth.copy(), truth.copy()
    first[:30] = 1 - first[:30]
    second[60:90] = 1 - second[60:90]
    blurred = 0.5 * truth + 0.25
    assert select_members(CLASSIFICATION, "roc_auc", y, [0, 1], [first, second, blurred]) != {0: 1}
    # Nothing beats a perfect model.
    assert select_members(CLASSIFICATION, "accuracy", y, [0, 1], [truth, first, second]) == {0: 1}


def test_a_served_ensemble_averages_refitted_members() -> None:
    frame = _cancer()
    spec = _spec(frame, 120.0, options={"max_trials": 8})
    fitted = search_tabular(frame, spec, CLASSIFICATION)
    members = fitted.details["ensemble"]
    rows = frame.drop(columns="target").head(5)
    predictions = fitted.model.predict_rows(rows)
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-6 for p in predictions)
    if members:
        assert sum(m["weight"] for m in members) >= 2
        assert members[0]["estimator"] == fitted.estimator
        assert len(fitted.model.pipeline.members) == len(members)
    assert pickle.loads(pickle.dumps(fitted.model)).predict_rows(rows) == predictions
