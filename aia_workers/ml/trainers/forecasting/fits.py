"""statsmodels ARIMA and ETS fits, their interval forecasts, and the seasonal naive baseline."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.tools.sm_exceptions import ModelWarning
from statsmodels.tsa.arima.model import ARIMA
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

from aia_workers.ml.trainers.forecasting.metrics import Array

__all__ = ["Candidate", "fit_arima", "fit_ets", "forecast", "naive", "quiet", "refitter"]

_Z80, _Z95 = 0.2, 0.05  # alpha of the 80 % and 95 % intervals


@dataclass(slots=True)
class Candidate:
    name: str
    params: dict[str, Any]
    aic: float
    result: Any  # statsmodels results fitted on the whole series
    search: list[dict[str, Any]]


@contextmanager
def quiet() -> Iterator[None]:
    # statsmodels warns about starting values, convergence and KPSS table bounds on
    # ordinary data; a poor fit shows in AIC and the backtest, so the warnings add nothing.
    with warnings.catch_warnings():
        for category in (ModelWarning, RuntimeWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield


def fit_arima(y: Array, params: dict[str, Any], start: Any = None) -> Any:
    with quiet():
        return ARIMA(y, **params).fit(start_params=start)


def fit_ets(y: Array, params: dict[str, Any], season: int) -> Any:
    # A Series, not an array: ETS prediction intervals need an index (statsmodels 0.14/0.15).
    model = ETSModel(
        pd.Series(y),
        error="add",
        trend=params["trend"],
        damped_trend=params["damped"],
        seasonal=params["seasonal"],
        seasonal_periods=season if params["seasonal"] else None,
    )
    with quiet():
        return model.fit(disp=False)


def refitter(candidate: Candidate, season: int) -> Callable[[Array, int], Array]:
    """Re-estimates the candidate's structure on a training prefix and forecasts from it."""

    def predict(train: Array, steps: int) -> Array:
        if candidate.name == "ets":
            return forecast(fit_ets(train, candidate.params, season), steps, "ets")
        # The full-series coefficients are good starting values and save iterations.
        result = fit_arima(train, candidate.params, candidate.result.params)
        return forecast(result, steps, "arima")

    return predict


def forecast(result: Any, steps: int, name: str) -> Array:
    """steps x (mean, lower_80, upper_80, lower_95, upper_95) from a fitted model.

    ARIMA intervals come from the state-space forecast variance; ETS intervals are
    the analytic ones of the additive-error model (no simulation needed).
    """
    with quiet():
        if name == "arima":
            prediction = result.get_forecast(steps)
            bands = [np.asarray(prediction.conf_int(alpha=a)) for a in (_Z80, _Z95)]
            mean = np.asarray(prediction.predicted_mean, float)
        else:
            n = int(result.nobs)
            prediction = result.get_prediction(start=n, end=n + steps - 1)
            frames = [prediction.summary_frame(alpha=a) for a in (_Z80, _Z95)]
            bands = [f[["pi_lower", "pi_upper"]].to_numpy(float) for f in frames]
            mean = frames[0]["mean"].to_numpy(float)
    return np.column_stack([mean, bands[0], bands[1]])


def naive(season: int) -> Callable[[Array, int], Array]:
    def predict(train: Array, steps: int) -> Array:
        last = train[-season:]
        return np.resize(last, steps)[:, None]

    return predict
