"""Forecasting on seeded synthetic series: beats the seasonal naive method, honest intervals."""

from __future__ import annotations

import json
import math
import pickle
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from statsmodels.tsa.arima.model import ARIMA

from aia_workers.ml.contracts.tables import ColumnKind, DatasetError
from aia_workers.ml.trainers.fitted import Fitted, TrainingSpec
from aia_workers.ml.trainers.forecasting import (
    ESTIMATORS,
    MAX_STEPS,
    ForecastModel,
    mape,
    mase,
    smape,
    train_forecaster,
)

HOLDOUT = 12
TIME = {"month": ColumnKind.DATETIME}


def _monthly(points: int = 144 + HOLDOUT, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(points)
    sales = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 2, points)
    months = pd.date_range("2010-01-01", periods=points, freq="MS").strftime("%Y-%m-%d")
    return pd.DataFrame({"month": months, "sales": sales})


def _spec(
    target: str = "sales", features: list[str] | None = None, budget: float = 60, **options: Any
) -> TrainingSpec:
    features = ["month"] if features is None else features
    kinds = {c: ColumnKind.DATETIME for c in features}
    return TrainingSpec(target, features, kinds, budget, options=options)


def _steps(count: int) -> pd.DataFrame:
    return pd.DataFrame(index=range(count))


@pytest.fixture(scope="module")
def seasonal() -> tuple[Fitted, pd.DataFrame, list[tuple[int, int, str | None]]]:
    frame = _monthly()
    calls: list[tuple[int, int, str | None]] = []

    def report(current: int, total: int, message: str | None = None) -> None:
        calls.append((current, total, message))

    fitted = train_forecaster(frame.iloc[:-HOLDOUT], _spec(), report)
    return fitted, frame.iloc[-HOLDOUT:], calls


def test_seasonal_series_beats_seasonal_naive(seasonal: Any) -> None:
    fitted, _, calls = seasonal
    assert fitted.estimator in ESTIMATORS
    assert fitted.metrics["mase"] < 0.6 * fitted.metrics["baseline_mase"]
    assert fitted.metrics["mase"] < 0.5
    assert set(fitted.metrics) == {"mape", "smape", "mase", "baseline_mase"}
    assert {t.estimator for t in fitted.leaderboard} == set(ESTIMATORS)
    scores = {t.estimator: t.score for t in fitted.leaderboard}
    assert scores[fitted.estimator] == min(scores.values()) == fitted.metrics["mase"]
    backtest = fitted.details["backtest"]
    assert set(backtest) == {"arima", "ets", "seasonal_naive"}
    assert backtest["seasonal_naive"]["mase"] == fitted.metrics["baseline_mase"]
    assert (fitted.params["season_length"], fitted.params["horizon"]) == (12, 12)
    # Everything the registry keeps is strict JSON.
    json.dumps([fitted.params, fitted.metrics, fitted.details], allow_nan=False)
    json.dumps([t.as_json() for t in fitted.leaderboard], allow_nan=False)
    # Progress climbs to the total and names each backtest fold.
    assert calls[-1][0] == calls[-1][1]
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert any("fold 3 of 3" in (c[2] or "") for c in calls)


def test_intervals_are_ordered_and_cover_the_holdout(seasonal: Any) -> None:
    fitted, holdout, _ = seasonal
    rows = fitted.model.predict_rows(_steps(HOLDOUT))
    assert [r["step"] for r in rows] == list(range(1, HOLDOUT + 1))
    for r in rows:
        assert r["lower_95"] <= r["lower_80"] <= r["forecast"] <= r["upper_80"] <= r["upper_95"]
    actual = holdout["sales"].to_numpy()
    covered = [r["lower_95"] <= a <= r["upper_95"] for r, a in zip(rows, actual, strict=True)]
    assert sum(covered) >= HOLDOUT - 2
    assert mase(actual, [r["forecast"] for r in rows], _monthly()["sales"][:-HOLDOUT], 12) < 1
    # Timestamps continue the monthly index, and details hold the same forecast.
    assert rows[0]["timestamp"].startswith(holdout["month"].iloc[0])
    assert rows[-1]["timestamp"].startswith(holdout["month"].iloc[-1])
    assert fitted.details["forecast"] == rows
    assert fitted.details["season_length_source"] == "frequency"


def test_pickle_round_trip_gives_the_same_forecasts(seasonal: Any) -> None:
    fitted, _, _ = seasonal
    blob = pickle.dumps(fitted.model)
    assert len(blob) < 100_000
    again = pickle.loads(blob)
    assert isinstance(again, ForecastModel)
    assert again.predict_rows(_steps(30)) == fitted.model.predict_rows(_steps(30))
    assert len(again.predict_rows(_steps(MAX_STEPS))) == MAX_STEPS
    with pytest.raises(DatasetError, match="between 1 and"):
        again.predict_rows(_steps(0))
    with pytest.raises(DatasetError, match="between 1 and"):
        again.predict_rows(_steps(MAX_STEPS + 1))


def test_arima_forced_picks_its_order_by_aic() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1, 80)
    values = np.zeros(80)
    for i in range(1, 80):
        values[i] = 0.7 * values[i - 1] + noise[i]
    frame = pd.DataFrame({"level": values + 50})
    fitted = train_forecaster(frame, _spec("level", [], estimator="arima", season_length=1))
    assert [t.estimator for t in fitted.leaderboard] == [fitted.estimator] == ["arima"]
    order, trend = fitted.params["order"], fitted.params["trend"]
    assert fitted.params["seasonal_order"] == [0, 0, 0, 0]
    assert "timestamp" not in fitted.details["forecast"][0]
    aics = [s["aic"] for s in fitted.details["search"]["arima"] if s["aic"] is not None]
    assert fitted.details["aic"] == min(aics) == fitted.leaderboard[0].params["aic"]
    # (1, d, 0) is one of the stepwise search's starting points, so it cannot beat the choice.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = ARIMA(frame["level"].to_numpy(), order=(1, order[1], 0), trend=trend).fit()
    assert fitted.details["aic"] <= other.aic + 1e-6


def test_ets_forced_with_a_shorter_horizon(seasonal: Any) -> None:
    frame = _monthly().iloc[:-HOLDOUT]
    fitted = train_forecaster(frame, _spec(estimator="ets", horizon=6, backtest_folds=2))
    assert [t.estimator for t in fitted.leaderboard] == [fitted.estimator] == ["ets"]
    assert set(fitted.params) == {"trend", "damped", "seasonal", "season_length", "horizon"}
    assert fitted.params["seasonal"] == "add"
    assert len(fitted.details["forecast"]) == 6
    assert fitted.details["backtest_folds"] == 2
    assert fitted.metrics["mase"] < fitted.metrics["baseline_mase"]


def test_daily_rows_out_of_order_are_sorted_and_weekly_season_found() -> None:
    rng = np.random.default_rng(5)
    days = pd.date_range("2024-01-01", periods=70, freq="D")
    weekly = np.array([0, 1, 2, 3, 4, 12, 14])[days.day_of_week]
    frame = pd.DataFrame(
        {"day": days.strftime("%Y-%m-%d"), "visits": 40 + weekly + rng.normal(0, 1, 70)}
    )
    shuffled = frame.sample(frac=1, random_state=1)
    spec = _spec("visits", ["day"], estimator="ets")
    fitted, in_order = train_forecaster(shuffled, spec), train_forecaster(frame, spec)
    assert fitted.details["season_length"] == 7
    assert fitted.details["last_timestamp"].startswith("2024-03-10")
    assert fitted.details["forecast"] == in_order.details["forecast"]
    assert fitted.details["forecast"][0]["timestamp"].startswith("2024-03-11")
    assert len(fitted.details["forecast"]) == 7


def test_season_found_by_autocorrelation_without_a_time_column() -> None:
    frame = _monthly().drop(columns="month")
    fitted = train_forecaster(frame, _spec(features=[], estimator="ets"))
    assert fitted.details["season_length"] == 12
    assert fitted.details["season_length_source"] == "autocorrelation"
    assert "timestamp" not in fitted.details["forecast"][0]


def test_gaps_are_interpolated_and_a_spent_budget_still_fits_one_model() -> None:
    frame = _monthly(72)
    frame.loc[[5, 30, 31], "sales"] = np.nan
    fitted = train_forecaster(frame, _spec(budget=0))
    assert fitted.details["interpolated"] == 3
    assert fitted.estimator == "ets"
    skipped = [t for t in fitted.leaderboard if t.error]
    assert [t.estimator for t in skipped] == ["arima"]
    assert "budget" in (skipped[0].error or "")
    assert all(math.isfinite(r["forecast"]) for r in fitted.details["forecast"])


@pytest.mark.parametrize(
    ("change", "column", "message"),
    [
        (lambda f: f.drop(columns="sales"), "sales", "not in the data"),
        (lambda f: f.assign(sales=["x"] * len(f)), "sales", "not numeric"),
        (lambda f: f.assign(sales=3.0), "sales", "constant"),
        (lambda f: f.head(15), "sales", "need at least"),
        (
            lambda f: f.assign(sales=np.where(np.arange(len(f)) % 2, np.nan, 1.0)),
            "sales",
            "missing",
        ),
        (lambda f: f.drop(columns="month"), "month", "not in the data"),
        (lambda f: f.assign(month="2020-01-01"), "month", "repeats"),
        (lambda f: f.assign(month="soon"), "month", "unreadable"),
    ],
)
def test_bad_input_names_the_column(change: Any, column: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message) as caught:
        train_forecaster(change(_monthly(60)), _spec())
    assert caught.value.column == column


def test_bad_options_are_refused() -> None:
    frame = _monthly(60)
    for options in ({"estimator": "prophet"}, {"horizon": 0}, {"season_length": "12"}):
        with pytest.raises(DatasetError, match="option"):
            train_forecaster(frame, _spec(**options))


def test_error_measures_on_hand_computed_examples() -> None:
    # Zero actuals are skipped: |100-110|/100 and |200-180|/200 are both 10 %.
    assert mape([100, 200, 0], [110, 180, 5]) == pytest.approx(10.0)
    assert math.isnan(mape([0, 0], [1, 2]))
    # 200 * 10 / 210 for the first step; both-zero steps count as 0.
    assert smape([100, 0], [110, 0]) == pytest.approx(200 * 10 / 210 / 2)
    assert smape([1], [-1]) == pytest.approx(200.0)
    # Forecast MAE 1 over naive in-sample MAE 1, then over seasonal (lag 2) MAE 0.5.
    assert mase([3, 5], [4, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert mase([2, 2], [1, 3], [1, 2, 1, 3], season_length=2) == pytest.approx(2.0)
    assert math.isnan(mase([1], [2], [5, 5, 5]))
