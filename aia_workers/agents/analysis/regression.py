"""Ordinary least squares of a target on the other columns, by statsmodels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm

from aia_workers.agents.contracts import AgentInputError
from aia_workers.ml.contracts.tables import ColumnKind

__all__ = ["regress"]

_ENCODED = (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)


def regress(
    frame: pd.DataFrame,
    kinds: dict[str, ColumnKind],
    target: str,
    *,
    exclude: set[str],
    alpha: float,
    max_levels: int,
) -> dict[str, Any]:
    """OLS of ``target`` on every other numeric column, categorical ones one-hot encoded.

    A categorical (or boolean) column with at most ``max_levels`` values enters
    as indicators of all its values but the first in sorted order (the
    reference level, so the intercept stays identifiable); one with more is
    left out and named in ``left_out``, as are constant columns and those in
    ``exclude`` (the time column). Rows missing any used value are dropped.
    Each coefficient has its standard error, t, p-value and the (1 - alpha)
    confidence interval; ``significant`` is p < alpha.
    """
    if kinds.get(target) != ColumnKind.NUMERIC:
        kind = kinds.get(target)
        raise AgentInputError(
            f"the target {target!r} holds {kind.value if kind else 'no'} values; "
            "a regression needs a numeric target"
        )
    left_out: dict[str, str] = {}
    parts: list[pd.DataFrame] = []
    for column in frame.columns:
        if column == target or column in exclude:
            continue
        kind = kinds[column]
        if kind == ColumnKind.NUMERIC:
            parts.append(frame[[column]].astype(float))
        elif kind in _ENCODED:
            levels = frame[column].dropna().astype(str)
            if levels.nunique() > max_levels:
                left_out[column] = f"more than {max_levels} distinct values"
                continue
            # Missing stays missing, so those rows are dropped below like any other.
            dummies = pd.get_dummies(
                frame[column].astype(object), prefix=column, prefix_sep="=", dtype=float
            )
            dummies = dummies[sorted(dummies.columns)]
            dummies[frame[column].isna().to_numpy()] = np.nan
            parts.append(dummies.iloc[:, 1:])
        else:
            left_out[column] = f"a {kind.value} column"
    if not parts:
        raise AgentInputError(
            f"there is no numeric or categorical column to explain {target!r} with"
        )
    predictors = pd.concat(parts, axis=1)
    data = pd.concat([frame[[target]].astype(float), predictors], axis=1).dropna()
    x = data.drop(columns=[target])
    constant = [c for c in x.columns if x[c].nunique() <= 1]
    for column in constant:
        left_out[column] = "constant in the rows used"
    x = x.drop(columns=constant)
    if x.shape[1] == 0:
        raise AgentInputError(f"every predictor of {target!r} is constant or missing")
    rows, used = len(data), x.shape[1]
    if rows < used + 2:
        raise AgentInputError(
            f"a regression of {target!r} on {used} predictors needs at least {used + 2} "
            f"complete rows; the data has {rows}"
        )
    model = sm.OLS(data[target], sm.add_constant(x, has_constant="add")).fit()
    interval = model.conf_int(alpha=alpha)
    coefficients = [
        {
            "term": str(term),
            "coefficient": float(model.params[term]),
            "std_error": float(model.bse[term]),
            "t": float(model.tvalues[term]),
            "p_value": float(model.pvalues[term]),
            "ci_low": float(interval.loc[term, 0]),
            "ci_high": float(interval.loc[term, 1]),
            "significant": bool(model.pvalues[term] < alpha),
        }
        for term in model.params.index
    ]
    return {
        "target": target,
        "n": rows,
        "predictors": [str(c) for c in x.columns],
        "left_out": left_out,
        "coefficients": coefficients,
        "r_squared": float(model.rsquared),
        "adj_r_squared": float(model.rsquared_adj),
        "f_p_value": float(model.f_pvalue),
        "alpha": alpha,
        "condition_number": float(model.condition_number),
    }
