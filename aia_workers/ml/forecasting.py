"""Univariate forecasting: ARIMA and ETS, chosen by a rolling-origin backtest.

Each model family picks its structure by AIC on the whole series (ARIMA by a
stepwise search around auto.arima's starting orders after tests choose d and D;
ETS over its additive-error variants). The coefficients are then re-estimated on
every backtest fold, so the backtest scores forecasts of data the fitted
coefficients never saw (the structure itself was chosen with the whole series in
view, as auto.arima users usually do). The family with the lowest backtest MASE
wins unless ``options["estimator"]`` names one; its whole-series fit forecasts.

Intervals: ARIMA's come from the state-space forecast variance, ETS's are the
analytic intervals of the additive-error ETS model; both are Gaussian.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from statsmodels.tools.sm_exceptions import ModelWarning
from statsmodels.tsa.arima.model import ARIMA
from statsmodels.tsa.exponential_smoothing.ets import ETSModel
from statsmodels.tsa.seasonal import STL
from statsmodels.tsa.stattools import acf, kpss
from threadpoolctl import threadpool_limits

from aia_workers.ml.datasets import MISSING, ColumnKind, DatasetError
from aia_workers.ml.fitted import Fitted, TrainingSpec, Trial, json_safe
from aia_workers.progress import ProgressReporter, discard_progress

__all__ = ["ESTIMATORS", "MAX_STEPS", "ForecastModel", "mape", "mase", "smape", "train_forecaster"]

Array = npt.NDArray[np.float64]
ESTIMATORS = ("arima", "ets")
MAX_STEPS = 1_000
_MAX_MISSING = 0.2  # beyond this share of gaps, interpolation invents the series
_MAX_ARIMA_FITS = 30
# Seasonal terms beyond this many steps make state-space fits crawl (R's ets refuses
# them too); longer seasons are left to the seasonal naive baseline.
_MAX_MODEL_SEASON = 24
_Z80, _Z95 = 0.2, 0.05  # alpha of the 80 % and 95 % intervals
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


def mape(actual: Sequence[float] | Array, forecast: Sequence[float] | Array) -> float:
    """Mean absolute percentage error in percent, skipping zero actuals (NaN if all are zero)."""
    a, f = np.asarray(actual, float), np.asarray(forecast, float)
    keep = a != 0
    return float(np.mean(np.abs((a[keep] - f[keep]) / a[keep])) * 100) if keep.any() else np.nan


def smape(actual: Sequence[float] | Array, forecast: Sequence[float] | Array) -> float:
    """Symmetric MAPE in percent (0 to 200); a step where both values are zero counts as 0."""
    a, f = np.asarray(actual, float), np.asarray(forecast, float)
    denominator = np.abs(a) + np.abs(f)
    terms = np.divide(200 * np.abs(a - f), denominator, out=np.zeros_like(a), where=denominator > 0)
    return float(np.mean(terms))


def mase(
    actual: Sequence[float] | Array,
    forecast: Sequence[float] | Array,
    history: Sequence[float] | Array,
    season_length: int = 1,
) -> float:
    """Forecast MAE over the in-sample MAE of the seasonal naive forecast (lag ``season_length``).

    Unitless: below 1 beats the naive method on its own training data. NaN when
    ``history`` repeats exactly with that lag, as the scale is then zero.
    """
    a, f, h = (np.asarray(v, float) for v in (actual, forecast, history))
    lagged = np.abs(h[season_length:] - h[:-season_length])
    scale = float(np.mean(lagged)) if len(lagged) else 0.0
    return float(np.mean(np.abs(a - f)) / scale) if scale > 0 else np.nan


@dataclass(frozen=True, slots=True)
class ForecastModel:
    """The next ``MAX_STEPS`` forecasts and intervals, computed when the model was fitted.

    Storing the path instead of the statsmodels results keeps the artifact a few
    kilobytes and independent of the statsmodels version that unpickles it; the
    model is not updated with new data, so the path is all a prediction needs.
    """

    estimator: str
    season_length: int
    table: Array  # MAX_STEPS x (forecast, lower_80, upper_80, lower_95, upper_95)
    last_timestamp: str | None = None
    frequency: str | None = None

    def predict_rows(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """One forecast per row of ``frame``: row i asks for step i + 1 (the content is ignored)."""
        return self.forecast(len(frame))

    def forecast(self, steps: int) -> list[dict[str, Any]]:
        if not 1 <= steps <= len(self.table):
            raise DatasetError(f"ask for between 1 and {len(self.table)} steps, not {steps}")
        stamps: list[str] | None = None
        if self.last_timestamp is not None and self.frequency is not None:
            try:
                index = pd.date_range(self.last_timestamp, periods=steps + 1, freq=self.frequency)
                stamps = [s.isoformat() for s in index[1:]]
            except (OverflowError, ValueError):  # past pandas' last representable date
                stamps = None
        keys = ("forecast", "lower_80", "upper_80", "lower_95", "upper_95")
        rows: list[dict[str, Any]] = []
        for i in range(steps):
            row: dict[str, Any] = {"step": i + 1}
            if stamps is not None:
                row["timestamp"] = stamps[i]
            row.update(zip(keys, (float(v) for v in self.table[i]), strict=True))
            rows.append(row)
        return rows


@dataclass(slots=True)
class _Candidate:
    name: str
    params: dict[str, Any]
    aic: float
    result: Any  # statsmodels results fitted on the whole series
    search: list[dict[str, Any]]


@contextmanager
def _quiet() -> Iterator[None]:
    # statsmodels warns about starting values, convergence and KPSS table bounds on
    # ordinary data; a poor fit shows in AIC and the backtest, so the warnings add nothing.
    with warnings.catch_warnings():
        for category in (ModelWarning, RuntimeWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield


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
    y, notes, last_timestamp, frequency = _prepare(frame, spec)
    season, horizon, folds = _settings(y, spec, frequency, notes)
    names = _choose_estimators(spec.options.get("estimator"))
    origins = [len(y) - horizon * k for k in range(folds, 0, -1)]
    total, done = len(names) * (1 + folds) + 1, 0
    report(0, total, "preparing the series")
    backtest = {"seasonal_naive": _backtest(y, season, horizon, origins, _naive(season))}
    leaderboard: list[Trial] = []
    fitted: dict[str, _Candidate] = {}
    for name in names:
        family_started = time.perf_counter()
        if fitted and time.perf_counter() > deadline:
            leaderboard.append(Trial(name, {}, None, 0.0, "skipped: the time budget ran out"))
            done += 1 + folds
            continue
        report(done, total, f"{name}: choosing the model by AIC")
        search = _search_arima if name == "arima" else _search_ets
        candidate = search(y, season, deadline)
        done += 1
        if candidate is None:
            leaderboard.append(Trial(name, {}, None, 0.0, "no configuration could be fitted"))
            done += folds
            continue

        def on_fold(fold: int, name: str = name, at: int = done) -> None:
            report(at + fold - 1, total, f"{name}: backtest fold {fold} of {folds}")

        try:
            predict = _refitter(candidate, season)
            backtest[name] = _backtest(y, season, horizon, origins, predict, on_fold)
        except (ValueError, np.linalg.LinAlgError) as exc:
            leaderboard.append(Trial(name, candidate.params, None, 0.0, f"backtest failed: {exc}"))
            done += folds
            continue
        done += folds
        fitted[name] = candidate
        seconds = time.perf_counter() - family_started
        params = json_safe({**candidate.params, "aic": candidate.aic})
        leaderboard.append(Trial(name, params, backtest[name]["mase"], seconds))
    if not fitted:
        raise DatasetError(
            f"no forecasting model could be fitted to {spec.target!r}", column=spec.target
        )
    best = min(fitted, key=lambda n: _rank(backtest[n]))
    chosen = fitted[best]
    report(done, total, f"{best}: forecasting")
    model = ForecastModel(
        best, season, _forecast(chosen.result, MAX_STEPS, best), last_timestamp, frequency
    )
    report(total, total, "done")
    scores = {**backtest[best], "baseline_mase": backtest["seasonal_naive"]["mase"]}
    # A NaN (all-zero actuals for MAPE, an exactly periodic history for MASE) is left out.
    metrics = {k: float(scores[k]) for k in ("mape", "smape", "mase", "baseline_mase")}
    metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}
    details = {
        **notes,
        "season_length": season,
        "seasonal_models": 1 < season <= _MAX_MODEL_SEASON,
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


def _prepare(
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


def _settings(
    y: Array, spec: TrainingSpec, frequency: str | None, notes: dict[str, Any]
) -> tuple[int, int, int]:
    options = spec.options
    season = _int_option(options, "season_length", 1, MAX_STEPS)
    if season is None:
        season, source = _infer_season(y, frequency)
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


def _choose_estimators(option: Any) -> tuple[str, ...]:
    if option is None:
        return ("ets", "arima")  # the cheap family first, so the budget always buys one model
    if option not in ESTIMATORS:
        raise DatasetError(f"option 'estimator' must be one of {', '.join(ESTIMATORS)}")
    return (str(option),)


def _infer_season(y: Array, frequency: str | None) -> tuple[int, str]:
    if frequency is not None:
        offset = pd.tseries.frequencies.to_offset(frequency)
        if offset.n == 1 and type(offset).__name__ in _PERIODS:
            return _PERIODS[type(offset).__name__], "frequency"
    max_lag = min(len(y) // 3, 400)  # fewer than three cycles are too few to trust a period
    if max_lag < 4:
        return 1, "none"
    # Differencing first keeps a trend from showing up as correlation at every lag.
    with _quiet():
        r = acf(np.diff(y), nlags=max_lag, fft=True)
    peaks = [k for k in range(2, max_lag) if r[k] > 0.3 and r[k - 1] < r[k] >= r[k + 1]]
    if not peaks:
        return 1, "none"
    strongest = max(r[k] for k in peaks)
    # Multiples of the period peak nearly as high; the shortest close one is the season.
    return next(k for k in peaks if r[k] >= 0.9 * strongest), "autocorrelation"


def _search_arima(y: Array, season: int, deadline: float) -> _Candidate | None:
    """Stepwise AIC search over (p, q, P, Q) after choosing d and D by tests, as auto.arima does."""
    seasonal = 1 < season <= _MAX_MODEL_SEASON
    big_d = _seasonal_differences(y, season) if seasonal else 0
    d = _differences(y[season:] - y[:-season] if big_d else y)
    # ARIMA drops trend terms of lower order than d + D, so drift only survives up to one.
    trend = "c" if d + big_d == 0 else "t" if d + big_d == 1 else "n"
    limits = (3, 3, 1, 1) if seasonal else (3, 3, 0, 0)
    # auto.arima's starting orders, cheapest first so a short budget still gets one.
    starts = [(0, 0, 0, 0), (1, 0, 1, 0), (0, 1, 0, 1), (2, 2, 1, 1)]
    pending = [tuple(min(v, m) for v, m in zip(s, limits, strict=True)) for s in starts]
    search: list[dict[str, Any]] = []
    best: _Candidate | None = None
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
            best = _consider(best, "arima", params, search, partial(_fit_arima, y, params))
            slowest = max(slowest, time.perf_counter() - fit_started)
        if best is None or _centre(best) == centre:
            break  # no neighbour of the best order improved on it
        pending = [o for o in _neighbours(_centre(best), limits) if o not in tried]
    return best


def _centre(candidate: _Candidate | None) -> tuple[int, ...]:
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
    best: _Candidate | None,
    name: str,
    params: dict[str, Any],
    search: list[dict[str, Any]],
    fit: Callable[[], Any],
) -> _Candidate | None:
    """Fits one configuration, logs its AIC in ``search`` and returns the better candidate."""
    try:
        with _quiet():
            result = fit()
    except (ValueError, np.linalg.LinAlgError) as exc:
        search.append({**params, "aic": None, "error": str(exc)})
        return best
    aic = float(result.aic)
    search.append({**params, "aic": aic})
    if np.isfinite(aic) and (best is None or aic < best.aic):
        return _Candidate(name, params, aic, result, search)
    return best


def _seasonal_differences(y: Array, season: int) -> int:
    # Seasonal strength from STL, with the 0.64 threshold of R's nsdiffs(test="seas").
    with _quiet():
        parts = STL(y, period=season).fit()
    noise = float(np.var(parts.resid))
    return int(noise < (1 - 0.64) * float(np.var(parts.seasonal + parts.resid)))


def _differences(x: Array) -> int:
    # KPSS at 5 %: difference while the series still looks non-stationary, at most twice.
    for d in range(2):
        if len(x) < 8 or np.ptp(x) == 0:
            return d
        with _quiet():
            # 0.15 warns that the tuple becomes an object; result_object= breaks 0.14.
            warnings.filterwarnings("ignore", "kpss currently returns", FutureWarning)
            p_value = kpss(x, regression="c", nlags="auto")[1]
        if p_value >= 0.05:
            return d
        x = np.diff(x)
    return 2


def _search_ets(y: Array, season: int, deadline: float) -> _Candidate | None:
    """Additive-error ETS: no, additive or damped trend, with or without additive seasonality."""
    seasonals = (None, "add") if 1 < season <= _MAX_MODEL_SEASON else (None,)
    configs = [
        (t, dm, s) for s in seasonals for t, dm in ((None, False), ("add", False), ("add", True))
    ]
    search: list[dict[str, Any]] = []
    best: _Candidate | None = None
    for trend, damped, seasonal in configs:
        if best is not None and time.perf_counter() > deadline:
            break
        params = {"trend": trend, "damped": damped, "seasonal": seasonal}
        best = _consider(best, "ets", params, search, partial(_fit_ets, y, params, season))
    return best


def _fit_arima(y: Array, params: dict[str, Any], start: Any = None) -> Any:
    with _quiet():
        return ARIMA(y, **params).fit(start_params=start)


def _fit_ets(y: Array, params: dict[str, Any], season: int) -> Any:
    # A Series, not an array: ETS prediction intervals need an index (statsmodels 0.14/0.15).
    model = ETSModel(
        pd.Series(y),
        error="add",
        trend=params["trend"],
        damped_trend=params["damped"],
        seasonal=params["seasonal"],
        seasonal_periods=season if params["seasonal"] else None,
    )
    with _quiet():
        return model.fit(disp=False)


def _refitter(candidate: _Candidate, season: int) -> Callable[[Array, int], Array]:
    """Re-estimates the candidate's structure on a training prefix and forecasts from it."""

    def predict(train: Array, steps: int) -> Array:
        if candidate.name == "ets":
            return _forecast(_fit_ets(train, candidate.params, season), steps, "ets")
        # The full-series coefficients are good starting values and save iterations.
        result = _fit_arima(train, candidate.params, candidate.result.params)
        return _forecast(result, steps, "arima")

    return predict


def _forecast(result: Any, steps: int, name: str) -> Array:
    """steps x (mean, lower_80, upper_80, lower_95, upper_95) from a fitted model.

    ARIMA intervals come from the state-space forecast variance; ETS intervals are
    the analytic ones of the additive-error model (no simulation needed).
    """
    with _quiet():
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


def _naive(season: int) -> Callable[[Array, int], Array]:
    def predict(train: Array, steps: int) -> Array:
        last = train[-season:]
        return np.resize(last, steps)[:, None]

    return predict


def _backtest(
    y: Array,
    season: int,
    horizon: int,
    origins: Sequence[int],
    predict: Callable[[Array, int], Array],
    on_fold: Callable[[int], None] = lambda fold: None,
) -> dict[str, Any]:
    """Mean MAPE, sMAPE, MASE (and interval coverage) over forecasts from each origin."""
    rows: list[dict[str, float]] = []
    for fold, origin in enumerate(origins, start=1):
        on_fold(fold)
        train, actual = y[:origin], y[origin : origin + horizon]
        table = predict(train, horizon)
        mean = table[:, 0]
        row = {
            "mape": mape(actual, mean),
            "smape": smape(actual, mean),
            "mase": mase(actual, mean, train, season),
            "mae": float(np.mean(np.abs(actual - mean))),
        }
        if table.shape[1] == 5:
            row["coverage_80"] = float(np.mean((table[:, 1] <= actual) & (actual <= table[:, 2])))
            row["coverage_95"] = float(np.mean((table[:, 3] <= actual) & (actual <= table[:, 4])))
        rows.append(row)
    summary: dict[str, Any] = {key: _mean([r[key] for r in rows]) for key in rows[0]}
    summary["folds"] = len(rows)
    return summary


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else np.nan


def _rank(metrics: dict[str, Any]) -> tuple[bool, float, float]:
    # MASE is NaN only when the history repeats exactly; fall back to plain MAE then.
    score = metrics["mase"]
    return (not np.isfinite(score), score if np.isfinite(score) else 0.0, metrics["mae"])
