"""train_forecaster: fits both model families, backtests them and keeps the better one."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from aia_workers.backbone.progress import ProgressReporter, discard_progress
from aia_workers.ml.budget import BudgetExceeded
from aia_workers.ml.contracts.tables import DatasetError
from aia_workers.ml.trainers.fitted import Fitted, TrainingSpec, Trial, json_safe
from aia_workers.ml.trainers.forecasting.fits import Candidate, forecast, naive, refitter
from aia_workers.ml.trainers.forecasting.metrics import rank, rolling_backtest
from aia_workers.ml.trainers.forecasting.model import MAX_STEPS, ForecastModel
from aia_workers.ml.trainers.forecasting.options import choose_estimators, settings
from aia_workers.ml.trainers.forecasting.search import MAX_MODEL_SEASON, search_arima, search_ets
from aia_workers.ml.trainers.forecasting.series import prepare

__all__ = ["train_forecaster"]

# Each model family picks its structure by AIC on the whole series (ARIMA by a
# stepwise search around auto.arima's starting orders after tests choose d and D;
# ETS over its additive-error variants). The coefficients are then re-estimated on
# every backtest fold, so the backtest scores forecasts of data the fitted
# coefficients never saw (the structure itself was chosen with the whole series in
# view, as auto.arima users usually do). The family with the lowest backtest MASE
# wins unless ``options["estimator"]`` names one; its whole-series fit forecasts.
#
# Intervals: ARIMA's come from the state-space forecast variance, ETS's are the
# analytic intervals of the additive-error ETS model; both are Gaussian.


def train_forecaster(
    frame: pd.DataFrame, spec: TrainingSpec, report: ProgressReporter = discard_progress
) -> Fitted:
    """Forecast ``spec.target`` ahead, optionally ordered by one DATETIME column in ``features``.

    Options: ``horizon`` (steps), ``season_length`` (steps per season), ``estimator``
    ("arima", "ets" or None for the better backtest) and ``backtest_folds``.
    """
    # Small matrices run fastest on one BLAS thread, and several workers share the cores.
    with threadpool_limits(limits=1, user_api="blas"):
        return _train(frame, spec, report)


def _train(frame: pd.DataFrame, spec: TrainingSpec, report: ProgressReporter) -> Fitted:
    started = time.perf_counter()
    deadline = started + max(float(spec.time_budget_seconds), 0.0)
    y, notes, last_timestamp, frequency = prepare(frame, spec)
    season, horizon, folds = settings(y, spec, frequency, notes)
    names = choose_estimators(spec.options.get("estimator"))
    origins = [len(y) - horizon * k for k in range(folds, 0, -1)]
    total, done = len(names) * (1 + folds) + 1, 0
    report(0, total, "preparing the series")
    backtest = {"seasonal_naive": rolling_backtest(y, season, horizon, origins, naive(season))}
    leaderboard: list[Trial] = []
    fitted: dict[str, Candidate] = {}
    try:
        for name in names:
            family_started = time.perf_counter()
            if fitted and time.perf_counter() > deadline:
                leaderboard.append(Trial(name, {}, None, 0.0, "skipped: the time budget ran out"))
                done += 1 + folds
                continue
            report(done, total, f"{name}: choosing the model by AIC")
            search = search_arima if name == "arima" else search_ets
            candidate = search(y, season, deadline)
            done += 1
            if candidate is None:
                leaderboard.append(Trial(name, {}, None, 0.0, "no configuration could be fitted"))
                done += folds
                continue

            def on_fold(fold: int, name: str = name, at: int = done) -> None:
                report(at + fold - 1, total, f"{name}: backtest fold {fold} of {folds}")

            try:
                predict = refitter(candidate, season)
                backtest[name] = rolling_backtest(y, season, horizon, origins, predict, on_fold)
            except (ValueError, np.linalg.LinAlgError) as exc:
                leaderboard.append(
                    Trial(name, candidate.params, None, 0.0, f"backtest failed: {exc}")
                )
                done += folds
                continue
            done += folds
            fitted[name] = candidate
            seconds = time.perf_counter() - family_started
            params = json_safe({**candidate.params, "aic": candidate.aic})
            leaderboard.append(Trial(name, params, backtest[name]["mase"], seconds))
    except BudgetExceeded:
        # The run's hard stop, in the middle of a family: the families already
        # backtested can still serve, and the one cut short is noted.
        if not fitted:
            raise
        leaderboard.append(Trial(name, {}, None, 0.0, "stopped: the time budget ran out"))
    if not fitted:
        raise DatasetError(
            f"no forecasting model could be fitted to {spec.target!r}", column=spec.target
        )
    best = min(fitted, key=lambda n: rank(backtest[n]))
    chosen = fitted[best]
    report(done, total, f"{best}: forecasting")
    model = ForecastModel(
        best, season, forecast(chosen.result, MAX_STEPS, best), last_timestamp, frequency
    )
    report(total, total, "done")
    scores = {**backtest[best], "baseline_mase": backtest["seasonal_naive"]["mase"]}
    # A NaN (all-zero actuals for MAPE, an exactly periodic history for MASE) is left out.
    metrics = {k: float(scores[k]) for k in ("mape", "smape", "mase", "baseline_mase")}
    metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}
    details = {
        **notes,
        "season_length": season,
        "seasonal_models": 1 < season <= MAX_MODEL_SEASON,
        "horizon": horizon,
        "backtest_folds": folds,
        "backtest": backtest,
        "aic": chosen.aic,
        "search": {n: c.search for n, c in fitted.items()},
        "forecast": model.forecast(horizon),
    }
    if last_timestamp is not None:
        details["last_timestamp"] = last_timestamp
    return Fitted(
        model=model,
        estimator=best,
        params=json_safe({**chosen.params, "season_length": season, "horizon": horizon}),
        metrics=metrics,
        fit_seconds=time.perf_counter() - started,
        leaderboard=leaderboard,
        details=json_safe(details),
    )
