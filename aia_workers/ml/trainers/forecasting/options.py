"""Training options: season length, horizon, backtest folds and the estimators to try."""

from __future__ import annotations

from typing import Any

from aia_workers.ml.contracts.options import FORECAST_ESTIMATORS
from aia_workers.ml.contracts.tables import DatasetError
from aia_workers.ml.trainers.fitted import TrainingSpec
from aia_workers.ml.trainers.forecasting.metrics import Array
from aia_workers.ml.trainers.forecasting.model import MAX_STEPS
from aia_workers.ml.trainers.forecasting.series import infer_season

__all__ = ["ESTIMATORS", "choose_estimators", "settings"]

ESTIMATORS = FORECAST_ESTIMATORS


def settings(
    y: Array, spec: TrainingSpec, frequency: str | None, notes: dict[str, Any]
) -> tuple[int, int, int]:
    options = spec.options
    season = _int_option(options, "season_length", 1, MAX_STEPS)
    if season is None:
        season, source = infer_season(y, frequency)
        if len(y) < _min_train(season) + (_int_option(options, "horizon", 1, MAX_STEPS) or season):
            season, source = 1, "too_short_for_" + source
        notes["season_length_source"] = source
    else:
        notes["season_length_source"] = "given"
    horizon = _int_option(options, "horizon", 1, MAX_STEPS) or (season if season > 1 else 12)
    needed = _min_train(season) + horizon
    if len(y) < needed:
        raise DatasetError(
            f"the target {spec.target!r} has {len(y)} points; a season of "
            f"{season} and a horizon of {horizon} need at least {needed}",
            column=spec.target,
        )
    requested = _int_option(options, "backtest_folds", 1, 20) or 3
    return season, horizon, min(requested, (len(y) - _min_train(season)) // horizon)


def _min_train(season: int) -> int:
    # Two full seasons let ETS and seasonal differencing see each season twice.
    return max(2 * season, 8)


def _int_option(options: Any, key: str, low: int, high: int) -> int | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DatasetError(f"option {key!r} must be a whole number from {low} to {high}")
    return value


def choose_estimators(option: Any) -> tuple[str, ...]:
    if option is None:
        return ("ets", "arima")  # the cheap family first, so the budget always buys one model
    if option not in ESTIMATORS:
        raise DatasetError(f"option 'estimator' must be one of {', '.join(ESTIMATORS)}")
    return (str(option),)
