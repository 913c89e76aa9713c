"""ForecastModel: the fitted forecaster, a stored table of the next MAX_STEPS forecasts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from aia_workers.ml.contracts.options import MAX_FORECAST_STEPS
from aia_workers.ml.contracts.tables import DatasetError
from aia_workers.ml.trainers.forecasting.metrics import Array

__all__ = ["MAX_STEPS", "ForecastModel"]

MAX_STEPS = MAX_FORECAST_STEPS


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
