"""Reading the target into a time-ordered, gap-filled series and inferring its season length."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from statsmodels.tsa.stattools import acf

from aia_workers.ml.contracts.tables import MISSING, ColumnKind, DatasetError
from aia_workers.ml.trainers.fitted import TrainingSpec
from aia_workers.ml.trainers.forecasting.fits import quiet
from aia_workers.ml.trainers.forecasting.metrics import Array

__all__ = ["infer_season", "prepare"]

_MAX_MISSING = 0.2  # beyond this share of gaps, interpolation invents the series
# The usual seasonal period of a regular frequency with multiple 1.
_PERIODS = {
    "MonthBegin": 12,
    "MonthEnd": 12,
    "BusinessMonthBegin": 12,
    "BusinessMonthEnd": 12,
    "QuarterBegin": 4,
    "QuarterEnd": 4,
    "Week": 52,
    "Day": 7,
    "BusinessDay": 5,
    "Hour": 24,
    "Minute": 60,
    "YearBegin": 1,
    "YearEnd": 1,
}


def prepare(
    frame: pd.DataFrame, spec: TrainingSpec
) -> tuple[Array, dict[str, Any], str | None, str | None]:
    target = spec.target
    if not target or target not in frame.columns:
        raise DatasetError(f"the target column {target!r} is not in the data", column=target)
    times = [c for c in spec.features if spec.kinds.get(c) == ColumnKind.DATETIME]
    if len(times) > 1:
        raise DatasetError("name at most one time column to order by", column=times[1])
    if times and times[0] not in frame.columns:
        raise DatasetError(f"the time column {times[0]!r} is not in the data", column=times[0])
    notes: dict[str, Any] = {"points": len(frame)}
    ignored = [c for c in spec.features if c not in times and c != target]
    if ignored:
        notes["ignored_features"] = ignored  # forecasts use the target's own history only
    raw = frame[target].reset_index(drop=True)
    if pd.api.types.is_bool_dtype(raw):
        raise DatasetError(f"the target {target!r} is not numeric", column=target)
    present = raw.notna() & ~raw.astype(str).str.strip().str.lower().isin(MISSING)
    values = pd.to_numeric(raw.where(present), errors="coerce").astype(float)
    bad = np.flatnonzero(present & values.isna())
    if len(bad):
        raise DatasetError(
            f"the target {target!r} is not numeric (row {bad[0] + 1}: {raw[bad[0]]!r})",
            column=target,
            row=int(bad[0]) + 1,
        )
    values[~np.isfinite(values)] = np.nan
    last_timestamp = frequency = None
    if times:
        stamps, frequency = _parse_times(frame[times[0]].reset_index(drop=True), times[0])
        order = np.argsort(stamps.to_numpy(), kind="stable")
        values = values.iloc[order].reset_index(drop=True)
        last_timestamp = stamps.iloc[order[-1]].isoformat()
        notes["time_column"] = times[0]
    missing = int(values.isna().sum())
    if missing > _MAX_MISSING * len(values):
        raise DatasetError(
            f"the target {target!r} has {missing} missing values of "
            f"{len(values)}; too many to interpolate",
            column=target,
        )
    if missing:
        values = values.interpolate(method="linear", limit_direction="both")
        notes["interpolated"] = missing
    y = values.to_numpy(dtype=float)
    if len(y) and np.ptp(y) == 0:
        raise DatasetError(f"the target {target!r} is constant; nothing to forecast", column=target)
    return y, notes, last_timestamp, frequency


def _parse_times(column: pd.Series[Any], name: str) -> tuple[pd.Series[Any], str | None]:
    try:
        stamps = pd.Series(pd.to_datetime(column, errors="coerce", format="ISO8601"))
    except (TypeError, ValueError) as exc:  # e.g. mixed time zones
        raise DatasetError(f"the time column {name!r} cannot be read: {exc}", column=name) from None
    bad = np.flatnonzero(stamps.isna())
    if len(bad):
        raise DatasetError(
            f"the time column {name!r} has a missing or unreadable time at row {bad[0] + 1}",
            column=name,
            row=int(bad[0]) + 1,
        )
    repeated = np.flatnonzero(stamps.duplicated())
    if len(repeated):
        raise DatasetError(
            f"the time column {name!r} repeats {stamps[repeated[0]]} (row {repeated[0] + 1})",
            column=name,
            row=int(repeated[0]) + 1,
        )
    try:
        offset = pd.DatetimeIndex(stamps.sort_values(), freq="infer").freq
    except (TypeError, ValueError):
        offset = None
    return stamps, None if offset is None else offset.freqstr


def infer_season(y: Array, frequency: str | None) -> tuple[int, str]:
    if frequency is not None:
        offset = pd.tseries.frequencies.to_offset(frequency)
        if offset.n == 1 and type(offset).__name__ in _PERIODS:
            return _PERIODS[type(offset).__name__], "frequency"
    max_lag = min(len(y) // 3, 400)  # fewer than three cycles are too few to trust a period
    if max_lag < 4:
        return 1, "none"
    # Differencing first keeps a trend from showing up as correlation at every lag.
    with quiet():
        r = acf(np.diff(y), nlags=max_lag, fft=True)
    peaks = [k for k in range(2, max_lag) if r[k] > 0.3 and r[k - 1] < r[k] >= r[k + 1]]
    if not peaks:
        return 1, "none"
    strongest = max(r[k] for k in peaks)
    # Multiples of the period peak nearly as high; the shortest close one is the season.
    return next(k for k in peaks if r[k] >= 0.9 * strongest), "autocorrelation"
