"""Structure search by AIC: the stepwise ARIMA order search and the choice of ETS variant."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
from statsmodels.tsa.seasonal import STL
from statsmodels.tsa.stattools import kpss

from aia_workers.ml.trainers.forecasting.fits import Candidate, fit_arima, fit_ets, quiet
from aia_workers.ml.trainers.forecasting.metrics import Array

__all__ = ["MAX_MODEL_SEASON", "search_arima", "search_ets"]

_MAX_ARIMA_FITS = 30
# Seasonal terms beyond this many steps make state-space fits crawl (R's ets refuses
# them too); longer seasons are left to the seasonal naive baseline.
MAX_MODEL_SEASON = 24


def search_arima(y: Array, season: int, deadline: float) -> Candidate | None:
    """Stepwise AIC search over (p, q, P, Q) after choosing d and D by tests, as auto.arima does."""
    seasonal = 1 < season <= MAX_MODEL_SEASON
    big_d = _seasonal_differences(y, season) if seasonal else 0
    d = _differences(y[season:] - y[:-season] if big_d else y)
    # ARIMA drops trend terms of lower order than d + D, so drift only survives up to one.
    trend = "c" if d + big_d == 0 else "t" if d + big_d == 1 else "n"
    limits = (3, 3, 1, 1) if seasonal else (3, 3, 0, 0)
    # auto.arima's starting orders, cheapest first so a short budget still gets one.
    starts = [(0, 0, 0, 0), (1, 0, 1, 0), (0, 1, 0, 1), (2, 2, 1, 1)]
    pending = [tuple(min(v, m) for v, m in zip(s, limits, strict=True)) for s in starts]
    search: list[dict[str, Any]] = []
    best: Candidate | None = None
    tried: set[tuple[int, ...]] = set()
    slowest = 0.0  # seconds; a fit that would likely end past the deadline is not started
    while pending:
        centre = _centre(best)
        for p, q, sp, sq in pending:
            if len(tried) >= _MAX_ARIMA_FITS or (best and time.perf_counter() + slowest > deadline):
                return best
            tried.add((p, q, sp, sq))
            fit_started = time.perf_counter()
            params = {
                "order": (p, d, q),
                "seasonal_order": (sp, big_d, sq, season) if seasonal else (0, 0, 0, 0),
                "trend": trend,
            }
            best = _consider(best, "arima", params, search, partial(fit_arima, y, params))
            slowest = max(slowest, time.perf_counter() - fit_started)
        if best is None or _centre(best) == centre:
            break  # no neighbour of the best order improved on it
        pending = [o for o in _neighbours(_centre(best), limits) if o not in tried]
    return best


def _centre(candidate: Candidate | None) -> tuple[int, ...]:
    if candidate is None:
        return ()
    (p, _, q), (sp, _, sq, _) = candidate.params["order"], candidate.params["seasonal_order"]
    return p, q, sp, sq


def _neighbours(centre: Sequence[int], limits: Sequence[int]) -> list[tuple[int, ...]]:
    """Orders one step from ``centre``: each of p, q, P, Q by one, and p and q together."""
    steps = [tuple(s * (i == j) for j in range(4)) for i in range(4) for s in (-1, 1)]
    steps += [(-1, -1, 0, 0), (1, 1, 0, 0)]
    moved = [tuple(c + s for c, s in zip(centre, step, strict=True)) for step in steps]
    return [o for o in moved if all(0 <= v <= m for v, m in zip(o, limits, strict=True))]


def _consider(
    best: Candidate | None,
    name: str,
    params: dict[str, Any],
    search: list[dict[str, Any]],
    fit: Callable[[], Any],
) -> Candidate | None:
    """Fits one configuration, logs its AIC in ``search`` and returns the better candidate."""
    try:
        with quiet():
            result = fit()
    except (ValueError, np.linalg.LinAlgError) as exc:
        search.append({**params, "aic": None, "error": str(exc)})
        return best
    aic = float(result.aic)
    search.append({**params, "aic": aic})
    if np.isfinite(aic) and (best is None or aic < best.aic):
        return Candidate(name, params, aic, result, search)
    return best


def _seasonal_differences(y: Array, season: int) -> int:
    # Seasonal strength from STL, with the 0.64 threshold of R's nsdiffs(test="seas").
    with quiet():
        parts = STL(y, period=season).fit()
    noise = float(np.var(parts.resid))
    return int(noise < (1 - 0.64) * float(np.var(parts.seasonal + parts.resid)))


def _differences(x: Array) -> int:
    # KPSS at 5 %: difference while the series still looks non-stationary, at most twice.
    for d in range(2):
        if len(x) < 8 or np.ptp(x) == 0:
            return d
        with quiet():
            # 0.15 warns that the tuple becomes an object; result_object= breaks 0.14.
            warnings.filterwarnings("ignore", "kpss currently returns", FutureWarning)
            p_value = kpss(x, regression="c", nlags="auto")[1]
        if p_value >= 0.05:
            return d
        x = np.diff(x)
    return 2


def search_ets(y: Array, season: int, deadline: float) -> Candidate | None:
    """Additive-error ETS: no, additive or damped trend, with or without additive seasonality."""
    seasonals = (None, "add") if 1 < season <= MAX_MODEL_SEASON else (None,)
    configs = [
        (t, dm, s) for s in seasonals for t, dm in ((None, False), ("add", False), ("add", True))
    ]
    search: list[dict[str, Any]] = []
    best: Candidate | None = None
    for trend, damped, seasonal in configs:
        if best is not None and time.perf_counter() > deadline:
            break
        params = {"trend": trend, "damped": damped, "seasonal": seasonal}
        best = _consider(best, "ets", params, search, partial(fit_ets, y, params, season))
    return best
