"""Univariate forecasting with ARIMA and ETS, chosen by a rolling-origin backtest."""

from aia_workers.ml.forecasting.metrics import mape, mase, smape
from aia_workers.ml.forecasting.model import MAX_STEPS, ForecastModel
from aia_workers.ml.forecasting.options import ESTIMATORS
from aia_workers.ml.forecasting.training import train_forecaster

__all__ = ["ESTIMATORS", "MAX_STEPS", "ForecastModel", "mape", "mase", "smape", "train_forecaster"]
