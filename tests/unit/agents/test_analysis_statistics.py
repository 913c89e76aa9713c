"""The analysis steps on planted data: each must find what was put there, and only that."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from aia_workers.agents.analysis.correlations import correlations
from aia_workers.agents.analysis.describe import describe
from aia_workers.agents.analysis.outliers import OutlierMethod, outliers
from aia_workers.agents.analysis.regression import regress
from aia_workers.agents.analysis.seasonality import trends
from aia_workers.agents.contracts import AgentInputError
from aia_workers.agents.jsonsafe import finite
from aia_workers.ml.contracts.tables import ColumnKind as K


def _seasonal(n: int = 144, slope: float = 0.5, period: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + slope * t + 10 * np.sin(2 * np.pi * t / period) + rng.normal(0, 1.5, n)


def test_numeric_statistics_match_their_definitions_and_count_missing_cells() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 100.0, np.nan]
    frame = pd.DataFrame({"x": values, "c": ["a", "b", "a", None, "a", "b"]})
    stats = describe(frame, {"x": K.NUMERIC, "c": K.CATEGORICAL}, top_values=1)
    x = stats["x"]
    assert (x["count"], x["missing"]) == (5, 1)
    assert x["mean"] == pytest.approx(22.0)
    assert x["std"] == pytest.approx(float(np.std([1, 2, 3, 4, 100], ddof=1)))
    assert (x["min"], x["q1"], x["median"], x["q3"], x["max"]) == (1, 2, 3, 4, 100)
    assert x["skew"] > 2  # one far value to the right
    c = stats["c"]
    assert (c["count"], c["missing"], c["distinct"]) == (5, 1, 2)
    assert c["top_values"] == [{"value": "a", "count": 3}]


def test_undefined_statistics_become_null_and_the_output_is_strict_json() -> None:
    frame = pd.DataFrame({"x": [5.0, np.nan, np.nan]})
    stats = finite(describe(frame, {"x": K.NUMERIC}, top_values=3))
    assert stats["x"]["std"] is None
    assert stats["x"]["skew"] is None
    assert finite({"a": float("inf"), "b": np.float64("nan"), "c": np.int64(3)}) == {
        "a": None,
        "b": None,
        "c": 3,
    }
    json.dumps(stats, allow_nan=False)


def test_correlations_rank_the_planted_pair_first_with_both_coefficients() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=300)
    frame = pd.DataFrame(
        {"a": a, "b": 2 * a + rng.normal(scale=0.3, size=300), "n": rng.normal(size=300)}
    )
    out = correlations(frame, ["a", "b", "n"], pairs=2)
    top = out["strongest_pairs"][0]
    assert top["columns"] == ["a", "b"]
    assert top["pearson"] > 0.95
    assert top["spearman"] > 0.95
    assert top["p_value"] < 1e-10
    assert top["n"] == 300
    assert len(out["pearson"]) == 3
    assert out["pearson"][0][0] == pytest.approx(1.0)
    assert abs(out["strongest_pairs"][1]["pearson"]) < 0.2


@pytest.mark.parametrize("method", list(OutlierMethod))
def test_planted_outliers_are_found_with_their_rows_and_nothing_else(method: OutlierMethod) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=200)
    x[[17, 120, 155]] = [12.0, -9.0, 15.0]
    frame = pd.DataFrame({"x": x})
    out = outliers(frame, ["x"], method=method, iqr_factor=3.0, mad_threshold=5.0, limit=2)["x"]
    assert out["count"] == 3
    # The most extreme first, at most ``limit`` listed; rows count from 1.
    assert [(r["row"], r["value"]) for r in out["rows"]] == [(156, 15.0), (18, 12.0)]
    assert len(out["rows"]) == 2


def test_a_column_without_spread_has_no_outliers() -> None:
    frame = pd.DataFrame({"x": [1.0] * 20 + [5.0]})
    out = outliers(
        frame, ["x"], method=OutlierMethod.IQR, iqr_factor=1.5, mad_threshold=3.5, limit=5
    )
    assert out["x"]["count"] == 0
    assert out["x"]["lower"] is None


def test_stl_recovers_a_planted_slope_and_an_unannounced_period() -> None:
    frame = pd.DataFrame({"t": np.arange(144.0), "sales": _seasonal(slope=0.5, period=12)})
    series = trends(frame, "t", K.NUMERIC, ["sales"], period=None)["series"]["sales"]
    assert series["method"] == "stl"
    assert series["seasonality"]["period"] == 12
    assert series["seasonality"]["period_source"] == "autocorrelation"
    assert series["seasonality"]["strength"] > 0.8
    assert series["trend"]["slope"] == pytest.approx(0.5, rel=0.05)
    assert series["trend"]["direction"] == "up"


def test_a_monthly_datetime_column_gives_the_period_and_a_slope_per_step() -> None:
    months = pd.date_range("2012-01-01", periods=96, freq="MS").strftime("%Y-%m-%d")
    frame = pd.DataFrame(
        {"month": pd.Series(months, dtype=object), "v": _seasonal(96, slope=-0.8, seed=4)}
    )
    out = trends(frame, "month", K.DATETIME, ["v"], period=None)
    series = out["series"]["v"]
    assert (out["time_unit"], out["frequency"]) == ("day", "MS")
    assert series["seasonality"] == {
        **series["seasonality"],
        "period": 12,
        "period_source": "frequency",
    }
    assert series["trend"]["slope_per_step"] == pytest.approx(-0.8, rel=0.05)
    assert series["trend"]["slope"] == pytest.approx(-0.8 * 12 / 365.25, rel=0.06)
    assert series["trend"]["direction"] == "down"


def test_a_series_without_season_gets_a_straight_line_and_rows_out_of_order_are_sorted() -> None:
    rng = np.random.default_rng(5)
    t = np.arange(100.0)
    frame = pd.DataFrame({"t": t, "y": 3 - 0.2 * t + rng.normal(0, 0.5, 100)}).sample(
        frac=1, random_state=0
    )
    series = trends(frame, "t", K.NUMERIC, ["y"], period=None)["series"]["y"]
    assert series["method"] == "linear"
    assert series["seasonality"]["period"] is None
    assert series["trend"]["slope"] == pytest.approx(-0.2, rel=0.05)


def test_a_period_longer_than_half_the_series_is_refused_with_the_need() -> None:
    frame = pd.DataFrame({"t": np.arange(30.0), "y": _seasonal(30)})
    with pytest.raises(AgentInputError, match="needs at least 41 points"):
        trends(frame, "t", K.NUMERIC, ["y"], period=20)


def test_a_text_time_column_is_refused() -> None:
    frame = pd.DataFrame({"t": ["a"] * 10, "y": np.arange(10.0)})
    with pytest.raises(AgentInputError, match="datetime or numeric"):
        trends(frame, "t", K.TEXT, ["y"], period=None)


def _regression_frame(n: int = 300, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, noise = rng.normal(size=n), rng.normal(size=n)
    group = rng.choice(["north", "south", "west"], size=n)
    y = 1.0 + 3.0 * a + np.where(group == "south", 2.0, 0.0) + rng.normal(scale=0.5, size=n)
    return pd.DataFrame({"a": a, "noise": noise, "group": pd.Series(group, dtype=object), "y": y})


def test_ols_recovers_planted_coefficients_and_leaves_noise_insignificant() -> None:
    frame = _regression_frame()
    kinds = {"a": K.NUMERIC, "noise": K.NUMERIC, "group": K.CATEGORICAL, "y": K.NUMERIC}
    out = regress(frame, kinds, "y", exclude=set(), alpha=0.05, max_levels=10)
    terms = {c["term"]: c for c in out["coefficients"]}
    assert set(terms) == {"const", "a", "noise", "group=south", "group=west"}
    assert terms["a"]["coefficient"] == pytest.approx(3.0, rel=0.03)
    assert terms["a"]["p_value"] < 0.01
    assert terms["a"]["significant"]
    assert terms["a"]["ci_low"] < 3.0 < terms["a"]["ci_high"]
    assert terms["group=south"]["coefficient"] == pytest.approx(2.0, abs=0.2)
    assert terms["noise"]["p_value"] > 0.05
    assert not terms["noise"]["significant"]
    assert out["n"] == 300
    assert out["r_squared"] > 0.9
    assert out["adj_r_squared"] <= out["r_squared"]
    assert all(math.isfinite(c["std_error"]) for c in out["coefficients"])


def test_regression_refuses_a_text_target_and_too_few_rows() -> None:
    frame = _regression_frame(n=3)
    kinds = {"a": K.NUMERIC, "noise": K.NUMERIC, "group": K.CATEGORICAL, "y": K.NUMERIC}
    with pytest.raises(AgentInputError, match="complete rows"):
        regress(frame, kinds, "y", exclude=set(), alpha=0.05, max_levels=10)
    with pytest.raises(AgentInputError, match="numeric target"):
        regress(frame, kinds, "group", exclude=set(), alpha=0.05, max_levels=10)


def test_a_categorical_column_with_too_many_levels_is_left_out_and_named() -> None:
    frame = _regression_frame()
    frame["id"] = [f"row{i}" for i in range(len(frame))]
    kinds = {"a": K.NUMERIC, "noise": K.NUMERIC, "group": K.CATEGORICAL, "y": K.NUMERIC}
    kinds["id"] = K.CATEGORICAL
    out = regress(frame, kinds, "y", exclude=set(), alpha=0.05, max_levels=10)
    assert "id" in out["left_out"]
    assert not any(t.startswith("id=") for t in out["predictors"])
