"""Forecast error metrics (MAPE, sMAPE, MASE) and the rolling-origin backtest that scores them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Array", "mape", "mase", "rank", "rolling_backtest", "smape"]

Array = npt.NDArray[np.float64]


def mape(actual: Sequence[float] | Array, forecast: Sequence[float] | Array) -> float:
    """Mean absolute percentage error in percent, skipping zero actuals (NaN if all are zero)."""
    a, f = np.asarray(actual, float), np.asarray(forecast, float)
    keep = a != 0
    return float(np.mean(np.abs((a[keep] - f[keep]) / a[keep])) * 100) if keep.any() else np.nan


def smape(actual: Sequence[float] | Array, forecast: Sequence[float] | Array) -> float:
    """Symmetric MAPE in percent (0 to 200); a step where both values are zero counts as 0."""
    a, f = np.asarray(actual, float), np.asarray(forecast, float)
    denominator = np.abs(a) + np.abs(f)
    terms = np.divide(200 * np.abs(a - f), denominator, out=np.zeros_like(a), where=denominator > 0)
    return float(np.mean(terms))


def mase(
    actual: Sequence[float] | Array,
    forecast: Sequence[float] | Array,
    history: Sequence[float] | Array,
    season_length: int = 1,
) -> float:
    """Forecast MAE over the in-sample MAE of the seasonal naive forecast (lag ``season_length``).

    Unitless: below 1 beats the naive method on its own training data. NaN when
    ``history`` repeats exactly with that lag, as the scale is then zero.
    """
    a, f, h = (np.asarray(v, float) for v in (actual, forecast, history))
    lagged = np.abs(h[season_length:] - h[:-season_length])
    scale = float(np.mean(lagged)) if len(lagged) else 0.0
    return float(np.mean(np.abs(a - f)) / scale) if scale > 0 else np.nan


def rolling_backtest(
    y: Array,
    season: int,
    horizon: int,
    origins: Sequence[int],
    predict: Callable[[Array, int], Array],
    on_fold: Callable[[int], None] = lambda fold: None,
) -> dict[str, Any]:
    """Mean MAPE, sMAPE, MASE (and interval coverage) over forecasts from each origin."""
    rows: list[dict[str, float]] = []
    for fold, origin in enumerate(origins, start=1):
        on_fold(fold)
        train, actual = y[:origin], y[origin : origin + horizon]
        table = predict(train, horizon)
        mean = table[:, 0]
        row = {
            "mape": mape(actual, mean),
            "smape": smape(actual, mean),
            "mase": mase(actual, mean, train, season),
            "mae": float(np.mean(np.abs(actual - mean))),
        }
        if table.shape[1] == 5:
            row["coverage_80"] = float(np.mean((table[:, 1] <= actual) & (actual <= table[:, 2])))
            row["coverage_95"] = float(np.mean((table[:, 3] <= actual) & (actual <= table[:, 4])))
        rows.append(row)
    summary: dict[str, Any] = {key: _mean([r[key] for r in rows]) for key in rows[0]}
    summary["folds"] = len(rows)
    return summary


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else np.nan


def rank(metrics: dict[str, Any]) -> tuple[bool, float, float]:
    # MASE is NaN only when the history repeats exactly; fall back to plain MAE then.
    score = metrics["mase"]
    return (not np.isfinite(score), score if np.isfinite(score) else 0.0, metrics["mae"])
