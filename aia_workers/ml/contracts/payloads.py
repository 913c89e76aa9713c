"""Payload schemas of the ``ml`` task types, and the names the API checks requests against.

Light on purpose: the API imports this module to validate and route.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_PREDICT_ROWS",
    "METRICS",
    "MLTask",
    "PredictPayload",
    "TrainPayload",
]

MAX_PREDICT_ROWS = 10_000


class MLTask(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    FORECASTING = "forecasting"
    TEXT_CLASSIFICATION = "text_classification"
    SENTIMENT = "sentiment"
    ANOMALY_DETECTION = "anomaly_detection"

    @property
    def needs_target(self) -> bool:
        """Sentiment and anomaly detection can learn without labels; the rest cannot."""
        return self not in (MLTask.SENTIMENT, MLTask.ANOMALY_DETECTION)


# The metrics a search can optimise, first the default.
METRICS: dict[MLTask, tuple[str, ...]] = {
    MLTask.CLASSIFICATION: ("accuracy", "f1", "roc_auc"),
    MLTask.REGRESSION: ("r2", "mae", "rmse"),
    MLTask.TEXT_CLASSIFICATION: ("accuracy", "f1"),
    MLTask.FORECASTING: ("mase",),
    MLTask.SENTIMENT: (),
    MLTask.ANOMALY_DETECTION: (),
}


class TrainPayload(BaseModel):
    """Train the experiment once; the run records what came of it."""

    model_config = ConfigDict(extra="forbid")

    experiment_id: str = Field(min_length=1, max_length=36)
    run_id: str = Field(min_length=1, max_length=36)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Per-kind knobs: estimator, max_trials, contamination, horizon, ...",
    )


class PredictPayload(BaseModel):
    """Predict ``rows`` with one version of a model (the API resolves aliases first)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=1)
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_PREDICT_ROWS)
