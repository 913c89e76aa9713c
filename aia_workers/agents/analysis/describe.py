"""Per column descriptive statistics: moments and quartiles of numbers, counts of the rest."""

from __future__ import annotations

from typing import Any

import pandas as pd

from aia_workers.ml.contracts.tables import ColumnKind

__all__ = ["describe"]


def describe(
    frame: pd.DataFrame, kinds: dict[str, ColumnKind], *, top_values: int
) -> dict[str, dict[str, Any]]:
    """Statistics of each column by its kind, keyed by column name.

    Numeric: count (present values), missing, mean, std (sample, ddof 1), min,
    q1, median, q3, max, skew (adjusted Fisher-Pearson, as pandas computes it).
    Anything else: count, missing, distinct, and the ``top_values`` most frequent
    values with their counts (ties in order of first appearance); a datetime
    column adds its first and last time.
    """
    out: dict[str, dict[str, Any]] = {}
    for column in frame.columns:
        kind = kinds[column]
        series = frame[column]
        if kind == ColumnKind.NUMERIC:
            out[column] = _numeric(series)
        else:
            out[column] = _categorical(series, kind, top_values)
    return out


def _numeric(series: pd.Series[Any]) -> dict[str, Any]:
    values = series.dropna().astype(float)
    stats: dict[str, Any] = {
        "kind": ColumnKind.NUMERIC.value,
        "count": int(values.size),
        "missing": int(series.size - values.size),
    }
    if values.empty:
        return stats | dict.fromkeys(
            ("mean", "std", "min", "q1", "median", "q3", "max", "skew"), None
        )
    q1, median, q3 = values.quantile([0.25, 0.5, 0.75]).tolist()
    return stats | {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if values.size > 1 else None,
        "min": float(values.min()),
        "q1": float(q1),
        "median": float(median),
        "q3": float(q3),
        "max": float(values.max()),
        "skew": float(values.skew()) if values.size > 2 else None,
    }


def _categorical(series: pd.Series[Any], kind: ColumnKind, top_values: int) -> dict[str, Any]:
    text = series.astype(object)
    # Text columns hold "" for a missing cell; the other kinds hold None.
    present = text[text.notna() & (text.astype(str) != "")].astype(str)
    counts = present.value_counts(sort=True)
    stats: dict[str, Any] = {
        "kind": kind.value,
        "count": int(present.size),
        "missing": int(series.size - present.size),
        "distinct": int(counts.size),
        "top_values": [
            {"value": str(value), "count": int(n)} for value, n in counts.head(top_values).items()
        ],
    }
    if kind == ColumnKind.DATETIME and not present.empty:
        stamps = pd.to_datetime(present, errors="coerce", format="ISO8601", utc=True).dropna()
        if not stamps.empty:
            stats["first"] = stamps.min().isoformat()
            stats["last"] = stamps.max().isoformat()
    return stats
