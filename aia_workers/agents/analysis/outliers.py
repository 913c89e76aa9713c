"""Robust outliers per numeric column: Tukey's IQR fences or MAD-based z-scores."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["OutlierMethod", "outliers"]

# Scales the median absolute deviation to a standard deviation under normality.
_MAD_SCALE = 1.4826


class OutlierMethod(StrEnum):
    IQR = "iqr"
    MAD = "mad"


def outliers(
    frame: pd.DataFrame,
    numeric: list[str],
    *,
    method: OutlierMethod,
    iqr_factor: float,
    mad_threshold: float,
    limit: int,
) -> dict[str, dict[str, Any]]:
    """The values of each numeric column outside its fences, the most extreme first.

    IQR: outside [q1 - k·IQR, q3 + k·IQR] with k = ``iqr_factor``. MAD: a
    modified z-score |x - median| / (1.4826·MAD) above ``mad_threshold``
    (Iglewicz and Hoaglin). ``count`` is every outlier; ``rows`` lists at most
    ``limit`` of them, each with its row number (1 = the first data row) and
    value. A column whose spread is zero (IQR or MAD 0) has no fences and no
    outliers: every value but the common one would be "infinitely" far.
    """
    out: dict[str, dict[str, Any]] = {}
    for column in numeric:
        values = frame[column].astype(float)
        present = values.dropna()
        if present.size < 4:
            out[column] = _none(method)
            continue
        if method == OutlierMethod.IQR:
            q1, q3 = present.quantile([0.25, 0.75]).tolist()
            spread = q3 - q1
            lower, upper = q1 - iqr_factor * spread, q3 + iqr_factor * spread
            centre = (q1 + q3) / 2
        else:
            centre = float(present.median())
            spread = _MAD_SCALE * float((present - centre).abs().median())
            lower, upper = centre - mad_threshold * spread, centre + mad_threshold * spread
        if spread <= 0:
            out[column] = _none(method)
            continue
        flagged = values[(values < lower) | (values > upper)]
        distance = (flagged - centre).abs().to_numpy()
        order = np.argsort(-distance, kind="stable")[:limit]
        rows = [{"row": int(flagged.index[i]) + 1, "value": float(flagged.iloc[i])} for i in order]
        entry: dict[str, Any] = {
            "method": method.value,
            "lower": float(lower),
            "upper": float(upper),
            "count": int(flagged.size),
            "rows": rows,
        }
        if method == OutlierMethod.MAD:
            entry["median"] = centre
            for row in rows:
                row["z"] = (row["value"] - centre) / spread
        out[column] = entry
    return out


def _none(method: OutlierMethod) -> dict[str, Any]:
    return {"method": method.value, "lower": None, "upper": None, "count": 0, "rows": []}
