"""Trend and seasonality of numeric columns along a time column, by statsmodels' STL."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from statsmodels.tsa.seasonal import STL

from aia_workers.agents.contracts import AgentInputError
from aia_workers.ml.contracts.tables import ColumnKind
from aia_workers.ml.trainers.forecasting.fits import quiet
from aia_workers.ml.trainers.forecasting.series import infer_season

__all__ = ["trends"]

_DAY = pd.Timedelta(days=1)
# A trend whose whole change is under this share of the series' spread is called flat.
_FLAT_SHARE = 0.1


class _Times:
    """The time column as sorted positions in its unit (days for datetimes), per row."""

    def __init__(self, frame: pd.DataFrame, column: str, kind: ColumnKind) -> None:
        raw = frame[column]
        if kind == ColumnKind.NUMERIC:
            self.position = raw.astype(float)
            self.unit = "unit"
            self.frequency: str | None = None
            self.origin: pd.Timestamp | None = None
        elif kind == ColumnKind.DATETIME:
            try:
                stamps = pd.Series(pd.to_datetime(raw, errors="coerce", format="ISO8601"))
            except (TypeError, ValueError) as exc:  # e.g. mixed time zones
                raise AgentInputError(
                    f"the time column {column!r} cannot be read as times: {exc}"
                ) from None
            self.origin = stamps.min()
            self.position = (stamps - self.origin) / _DAY
            self.unit = "day"
            self.frequency = _frequency(stamps.dropna())
        else:
            raise AgentInputError(
                f"the time column {column!r} holds {kind.value} values; name a datetime or "
                "numeric column as time_column"
            )
        if self.position.notna().sum() < 4:
            raise AgentInputError(f"the time column {column!r} has fewer than 4 readable times")

    def label(self, position: float) -> Any:
        if self.origin is None:
            return position
        return (self.origin + position * _DAY).isoformat()


def trends(
    frame: pd.DataFrame,
    time_column: str,
    kind: ColumnKind,
    columns: list[str],
    *,
    period: int | None,
) -> dict[str, Any]:
    """STL of each of ``columns`` ordered by ``time_column``: trend slope, seasonal strength.

    Rows are ordered by time; rows sharing a time are averaged and missing
    values interpolated, since STL wants one value per regular step. The slope
    is a least-squares line through the STL trend, per unit of the time column
    (per day for datetimes) and per step (from one time to the next; ``step``
    is the median time between them). Seasonal and
    trend strength follow Wang, Smith and Hyndman (2006): 1 - Var(R)/Var(S+R),
    floored at 0. ``period`` (season length in steps) is inferred when None:
    from a regular datetime frequency (12 for months, 7 for days, ...) or the
    autocorrelation of the differenced series; a series with no season found
    gets a straight-line trend and no seasonality.
    """
    times = _Times(frame, time_column, kind)
    if period is not None and period < 2:
        raise AgentInputError("period is a season length in steps; it must be at least 2")
    series = {}
    for column in columns:
        series[column] = _one(frame, times, column, period)
    return {
        "time_column": time_column,
        "time_unit": times.unit,
        "frequency": times.frequency,
        "series": series,
    }


def _one(frame: pd.DataFrame, times: _Times, column: str, period: int | None) -> dict[str, Any]:
    data = pd.DataFrame({"t": times.position, "y": frame[column].astype(float)}).dropna(
        subset=["t"]
    )
    data = data.groupby("t", sort=True)["y"].mean()
    missing = int(data.isna().sum())
    if missing > 0.2 * data.size:
        return {"points": int(data.size), "skipped": f"{missing} of {data.size} values missing"}
    y_series = data.interpolate(method="linear", limit_direction="both") if missing else data
    t = y_series.index.to_numpy(dtype=float)
    y = y_series.to_numpy(dtype=float)
    if np.ptp(y) == 0:
        return {"points": int(y.size), "skipped": "constant"}
    step = float(np.median(np.diff(t)))
    if period is not None:
        if y.size < 2 * period + 1:
            raise AgentInputError(
                f"a season of {period} steps needs at least {2 * period + 1} points; "
                f"{column!r} has {y.size} distinct times"
            )
        season, source = period, "input"
    else:
        season, source = infer_season(y, times.frequency)
    result: dict[str, Any] = {"points": int(y.size), "step": step}
    if missing:
        result["interpolated"] = missing
    if season >= 2:
        with quiet():
            parts = STL(y, period=season, robust=True).fit()
        trend, seasonal, resid = parts.trend, parts.seasonal, parts.resid
        result["method"] = "stl"
        result["seasonality"] = {
            "period": int(season),
            "period_source": source,
            "strength": _strength(seasonal, resid),
            "amplitude": float(np.ptp(seasonal) / 2),
        }
    else:
        coefficients = np.polyfit(t, y, 1)
        trend = np.polyval(coefficients, t)
        resid = y - trend
        result["method"] = "linear"
        result["seasonality"] = {"period": None, "period_source": source, "strength": None}
    slope = float(np.polyfit(t, trend, 1)[0])
    # Per observation, so a monthly series reads "per month" whatever the months' lengths.
    per_step = float(np.polyfit(np.arange(t.size, dtype=float), trend, 1)[0])
    change = slope * float(t[-1] - t[0])
    flat = abs(change) < _FLAT_SHARE * float(np.std(y))
    result["trend"] = {
        "slope": slope,
        "slope_per_step": per_step,
        "direction": "flat" if flat else "up" if slope > 0 else "down",
        "change": change,
        "start": {"time": times.label(float(t[0])), "value": float(trend[0])},
        "end": {"time": times.label(float(t[-1])), "value": float(trend[-1])},
        "strength": _strength(trend, resid) if result["method"] == "stl" else None,
    }
    return result


def _strength(component: np.ndarray[Any, Any], resid: np.ndarray[Any, Any]) -> float | None:
    total = float(np.var(component + resid))
    if total == 0:
        return None
    return max(0.0, 1.0 - float(np.var(resid)) / total)


def _frequency(stamps: pd.Series[Any]) -> str | None:
    try:
        offset = pd.DatetimeIndex(stamps.drop_duplicates().sort_values(), freq="infer").freq
    except (TypeError, ValueError):
        return None
    return None if offset is None else str(offset.freqstr)
