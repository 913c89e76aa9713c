"""Pearson and Spearman matrices of the numeric columns, and the most correlated pairs."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["correlations"]


def correlations(frame: pd.DataFrame, numeric: list[str], *, pairs: int) -> dict[str, Any]:
    """Both matrices over pairwise complete rows, and the ``pairs`` pairs strongest by |Pearson r|.

    Each pair carries Pearson r with its two-sided p-value, Spearman rho, and
    the number of rows where both are present. A constant column correlates
    with nothing (its entries are null). Fewer than two numeric columns give
    empty matrices.
    """
    data = frame[numeric].astype(float)
    pearson = data.corr(method="pearson", min_periods=3)
    spearman = data.corr(method="spearman", min_periods=3)
    ranked: list[dict[str, Any]] = []
    for a, b in combinations(numeric, 2):
        r = pearson.at[a, b]
        if not np.isfinite(r):
            continue
        both = data[[a, b]].dropna()
        p_value = _p_value(float(r), len(both))
        ranked.append(
            {
                "columns": [a, b],
                "pearson": float(r),
                "p_value": p_value,
                "spearman": _number(spearman.at[a, b]),
                "n": len(both),
            }
        )
    ranked.sort(key=lambda pair: -abs(pair["pearson"]))
    return {
        "columns": numeric,
        "pearson": _matrix(pearson, numeric),
        "spearman": _matrix(spearman, numeric),
        "strongest_pairs": ranked[:pairs],
    }


def _p_value(r: float, n: int) -> float | None:
    # The t test of pearsonr, written out so a cached r need not be recomputed per pair.
    if n < 3:
        return None
    if abs(r) >= 1.0:
        return 0.0
    t = r * np.sqrt((n - 2) / (1.0 - r * r))
    return float(2.0 * stats.t.sf(abs(t), n - 2))


def _matrix(matrix: pd.DataFrame, names: list[str]) -> list[list[float | None]]:
    return [[_number(matrix.at[a, b]) for b in names] for a in names]


def _number(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None
