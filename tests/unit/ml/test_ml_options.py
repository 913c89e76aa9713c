"""Training options: only known names, each within its bounds, the same tables as the trainers."""

from __future__ import annotations

from typing import Any

import pytest

from aia_workers.ml.contracts.options import (
    ANOMALY_ESTIMATORS,
    FORECAST_ESTIMATORS,
    TABULAR_ESTIMATORS,
    TEXT_ESTIMATORS,
    OptionLimits,
    OptionsError,
    check_budget,
    check_options,
)
from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.trainers.automl import SEARCH_SPACES
from aia_workers.ml.trainers.tabular import TabularTask
from aia_workers.ml.trainers.text import CANDIDATES
from aia_workers.settings import Settings

C, R = MLTask.CLASSIFICATION, MLTask.REGRESSION


def _refused(task: MLTask, options: dict[str, Any], limits: OptionLimits | None = None):
    with pytest.raises(OptionsError) as caught:
        check_options(task, options, limits)
    return caught.value


@pytest.mark.parametrize(
    ("task", "options"),
    [
        (C, {}),
        (C, {"estimators": ["svm", "mlp"], "max_trials": 20}),
        (C, {"estimator": "random_forest", "params": {"n_estimators": 1000, "max_depth": None}}),
        (
            C,
            {
                "estimator": "mlp",
                "params": {"hidden_layers": [1024, 1024], "max_epochs": 1000, "dropout": 0.5},
            },
        ),
        (R, {"estimator": "svm", "params": {"C": 3, "gamma": 0.1, "epsilon": 0.2}}),
        (MLTask.FORECASTING, {"horizon": 1000, "season_length": 12, "backtest_folds": 20}),
        (MLTask.TEXT_CLASSIFICATION, {"estimator": "linear_svc"}),
        (MLTask.SENTIMENT, {"positive_threshold": 0.3, "negative_threshold": -0.3}),
        (MLTask.ANOMALY_DETECTION, {"contamination": "auto", "estimator": "one_class_svm"}),
        (MLTask.ANOMALY_DETECTION, {"contamination": 0.5}),
    ],
)
def test_options_within_bounds_pass_unchanged(task: MLTask, options: dict[str, Any]) -> None:
    assert check_options(task, options) == options


@pytest.mark.parametrize(
    ("task", "options", "parameter", "says"),
    [
        (
            C,
            {"estimator": "mlp", "params": {"hidden_layers": [40_000, 40_000]}},
            "options.params.hidden_layers.0",
            "less than or equal to 1024 (the AIA_ML_MAX_HIDDEN_UNITS setting)",
        ),
        (
            C,
            {"estimator": "mlp", "params": {"max_epochs": 1_000_000_000}},
            "options.params.max_epochs",
            "less than or equal to 1000 (the AIA_ML_MAX_EPOCHS setting)",
        ),
        (
            C,
            {"estimator": "mlp", "params": {"hidden_layers": [8] * 9}},
            "options.params.hidden_layers",
            "at most 8 items",
        ),
        (
            C,
            {"estimator": "random_forest", "params": {"n_jobs": -1}},
            "options.params.n_jobs",
            "the worker runs each fit on one thread",
        ),
        (
            R,
            {"estimator": "random_forest", "params": {"n_estimators": 100_000}},
            "options.params.n_estimators",
            "AIA_ML_MAX_TREES",
        ),
        (
            C,
            {"estimator": "hist_gradient_boosting", "params": {"max_iter": 5000}},
            "options.params.max_iter",
            "AIA_ML_MAX_TREES",
        ),
        (
            C,
            {"estimator": "random_forest", "params": {"verbose": 3}},
            "options.params.verbose",
            "random_forest's parameters are: max_depth, max_features",
        ),
        (
            C,
            {"estimator": "random_forest", "params": {"n_estimators": "100"}},
            "options.params.n_estimators",
            "valid integer",
        ),
        (
            C,
            {"estimator": "random_forest", "params": {"max_features": "all"}},
            "options.params.max_features",
            "'sqrt' or 'log2', or input should be a valid number",
        ),
        (C, {"params": {"C": 2.0}}, "options.params", "name it in options.estimator"),
        (C, {"estimator": "ridge"}, "options.estimator", "'logistic_regression'"),
        (R, {"estimators": ["ridge", "knn"]}, "options.estimators.1", "'ridge'"),
        (R, {"max_trials": 0}, "options.max_trials", "greater than or equal to 1"),
        (R, {"estimator": "svm", "params": {"C": 1e9}}, "options.params.C", "10000"),
        (C, {"horizon": 3}, "options.horizon", "estimator, estimators, max_trials, params"),
        (MLTask.FORECASTING, {"horizon": 5000}, "options.horizon", "1000"),
        (MLTask.FORECASTING, {"backtest_folds": 50}, "options.backtest_folds", "20"),
        (MLTask.TEXT_CLASSIFICATION, {"estimator": "bert"}, "options.estimator", "linear_svc"),
        (
            MLTask.SENTIMENT,
            {"negative_threshold": 0.5},
            "options.negative_threshold",
            "below positive_threshold",
        ),
        (
            MLTask.ANOMALY_DETECTION,
            {"contamination": 0.9},
            "options.contamination",
            "less than or equal to 0.5",
        ),
    ],
)
def test_an_option_out_of_bounds_is_named_with_its_bound(
    task: MLTask, options: dict[str, Any], parameter: str, says: str
) -> None:
    error = _refused(task, options)
    assert error.parameter == parameter
    assert says in error.errors[0]["message"]
    assert str(error).startswith(f"{parameter}: ")
    assert error.errors[0]["pointer"] == "/" + parameter.replace(".", "/")
    assert isinstance(error, ValueError)  # the worker fails such a run as bad input


def test_every_problem_is_listed() -> None:
    error = _refused(
        C,
        {
            "estimator": "mlp",
            "params": {"hidden_layers": [2048, 4096], "max_epochs": 10**9, "device": "cuda"},
        },
    )
    assert [e["pointer"] for e in error.errors] == [
        "/options/params/hidden_layers/0",
        "/options/params/hidden_layers/1",
        "/options/params/max_epochs",
        "/options/params/device",
    ]
    assert "(and 3 more)" in str(error)


def test_the_operator_moves_the_bounds_through_settings() -> None:
    limits = OptionLimits.from_settings(
        Settings(ml_max_trees=50, ml_max_hidden_units=16, ml_max_epochs=5)
    )
    assert limits == OptionLimits(ml_max_trees=50, ml_max_hidden_units=16, ml_max_epochs=5)
    forest = {"estimator": "random_forest", "params": {"n_estimators": 60}}
    assert "less than or equal to 50" in str(_refused(C, forest, limits))
    assert check_options(C, forest) == forest  # within the default bound
    mlp = {"estimator": "mlp", "params": {"hidden_layers": [16], "max_epochs": 5}}
    assert check_options(C, mlp, limits) == mlp


def test_the_time_budget_is_bounded_by_its_setting() -> None:
    check_budget(3600, 3600)
    for seconds in (3600.5, 0, -1):
        with pytest.raises(OptionsError, match="AIA_ML_MAX_TIME_BUDGET_SECONDS") as caught:
            check_budget(seconds, 3600)
        assert caught.value.parameter == "time_budget_seconds"


def test_the_tables_name_what_the_trainers_fit() -> None:
    for task in (C, R):
        assert TABULAR_ESTIMATORS[task] == tuple(SEARCH_SPACES[TabularTask(task.value)])
    families = {c.family for c in CANDIDATES.values()}
    assert set(TEXT_ESTIMATORS) == set(CANDIDATES) | families
    from aia_workers.ml.trainers.anomaly import ESTIMATORS as anomaly
    from aia_workers.ml.trainers.forecasting import ESTIMATORS as forecasting

    assert (anomaly, forecasting) == (ANOMALY_ESTIMATORS, FORECAST_ESTIMATORS)


def test_every_point_the_search_tries_is_within_bounds() -> None:
    # A parameter the search uses but the table refused would make that family
    # impossible to ask for by name; one the estimator lacks would fail its fit.
    for task in (C, R):
        for family, space in SEARCH_SPACES[TabularTask(task.value)].items():
            for point in [space.defaults, *space.points()]:
                params = {k: list(v) if isinstance(v, tuple) else v for k, v in point.items()}
                options = {"estimator": family, "params": params}
                assert check_options(task, options) == options, (family, point)
