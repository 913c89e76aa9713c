"""Univariate forecasting with ARIMA and ETS, chosen by a rolling-origin backtest."""

from aia_workers.ml.trainers.forecasting.metrics import mape, mase, smape
from aia_workers.ml.trainers.forecasting.model import MAX_STEPS, ForecastModel
from aia_workers.ml.trainers.forecasting.options import ESTIMATORS
from aia_workers.ml.trainers.forecasting.training import train_forecaster

__all__ = ["ESTIMATORS", "MAX_STEPS", "ForecastModel", "mape", "mase", "smape", "train_forecaster"]
