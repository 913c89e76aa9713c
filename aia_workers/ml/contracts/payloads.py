"""Payload schemas of the ``ml`` task types, and the names the API checks requests against.

Light on purpose: the API imports this module to validate and route.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_PREDICT_ROWS",
    "METRICS",
    "MLTask",
    "PredictPayload",
    "RetrainOptions",
    "RetrainPayload",
    "RetrainTrigger",
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


RetrainTrigger = Literal["manual", "schedule", "drift", "performance"]


class RetrainOptions(BaseModel):
    """How a retrain compares: which alias, by what margin, on which data (as callers choose)."""

    model_config = ConfigDict(extra="forbid")

    alias: str = Field(
        default="production",
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$",
        description="The alias naming the champion, moved to the challenger if it wins.",
    )
    margin: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="How much better the challenger must score, in the metric's units.",
    )
    holdout_fraction: float = Field(
        default=0.2,
        ge=0.05,
        le=0.5,
        description="The share of the current data held out to score both models.",
    )
    dataset_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=36,
        description="The current data, with the experiment's target and feature columns; "
        "by default the experiment's dataset.",
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="Seeds the holdout split and the training; by default from the task's id.",
    )


class RetrainPayload(RetrainOptions):
    """Train a challenger on the model's current data; promote it over the champion if it wins.

    Champion and challenger are scored on one fresh holdout with the
    experiment's metric; ``alias`` moves to the challenger only when it is
    better by at least ``margin`` (in the metric's units) and strictly better.
    """

    model: str = Field(min_length=1, max_length=200, description="The model's name.")
    trigger: RetrainTrigger = "manual"
    report_id: str | None = Field(
        default=None, max_length=36, description="The drift report that triggered it."
    )
