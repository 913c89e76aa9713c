"""Payload schemas of the ``drift`` task types and the drift policy, light for the API.

Pydantic and the standard library only, like ``checks``: the API validates a
check and a policy with these without importing the statistics.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aia_workers.drift.contracts.checks import DriftConfig, PerformanceConfig

__all__ = [
    "DriftCheckOptions",
    "DriftCheckPayload",
    "DriftPolicyBody",
    "RetrainOn",
    "RetrainTrigger",
]

_ALIAS = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


class DriftCheckOptions(BaseModel):
    """A check of a model named elsewhere (the request path): which version, which window.

    The version: ``version``, else ``alias``, else ``production``, else the
    latest (as predictions resolve it). The current window: the rows of
    ``dataset_id``, or else that version's prediction log between ``since``
    and ``until`` (each optional; neither: the whole log kept for it).
    """

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1)
    alias: str | None = Field(default=None, pattern=_ALIAS)
    dataset_id: str | None = Field(
        default=None, min_length=1, max_length=36, description="Check this dataset's rows."
    )
    since: datetime | None = Field(
        default=None, description="Logged predictions from this time on (inclusive)."
    )
    until: datetime | None = Field(
        default=None, description="Logged predictions before this time (exclusive)."
    )
    config: DriftConfig = Field(default_factory=DriftConfig)
    performance: PerformanceConfig = Field(
        default_factory=PerformanceConfig,
        description="Performance drift, measured on the labelled feedback of a prediction-log "
        "window (not of a dataset).",
    )

    @model_validator(mode="after")
    def _one_selector_one_window(self) -> DriftCheckOptions:
        if self.version is not None and self.alias is not None:
            raise ValueError("give a version or an alias, not both")
        if self.dataset_id is not None and (self.since is not None or self.until is not None):
            raise ValueError(
                "the window is a dataset or a time range of the prediction log, not both: "
                "drop since/until, or dataset_id"
            )
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone, e.g. 2026-01-31T00:00:00Z")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class DriftCheckPayload(DriftCheckOptions):
    """The ``drift.check`` payload: a check of one version of ``model`` (see the options)."""

    model: str = Field(min_length=1, max_length=200)


class RetrainOn(StrEnum):
    """What in a drift report makes AIA retrain the model."""

    DATASET_DRIFT = "dataset_drift"
    PERFORMANCE_DROP = "performance_drop"
    NEVER = "never"


class RetrainTrigger(StrEnum):
    """Why an ``ml.retrain`` was submitted (its payload's ``trigger``), from a drift report."""

    DRIFT = "drift"
    PERFORMANCE = "performance"


class DriftPolicyBody(BaseModel):
    """A model's drift policy: when a drift report retrains it, and how the retrain decides."""

    model_config = ConfigDict(extra="forbid")

    retrain_on: RetrainOn = Field(
        default=RetrainOn.NEVER,
        description="`dataset_drift`: a report whose dataset drifted; `performance_drop`: a "
        "report whose performance on labelled feedback dropped; `never`.",
    )
    alias: str = Field(
        default="production",
        pattern=_ALIAS,
        description="The alias the retrain's challenger may take over.",
    )
    margin: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="How much better the challenger must score to take the alias.",
    )
