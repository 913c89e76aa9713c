"""Payload schemas of the diagnostics task types."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SleepPayload"]


class SleepPayload(BaseModel):
    """Sleep ``seconds`` in total, split into ``steps`` with progress after each."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=600, description="Total time to sleep, in seconds.")
    steps: int = Field(default=1, ge=1, le=1000, description="Progress reports to make.")
    fail: bool = Field(default=False, description="Fail after the last step.")
    transient_failures: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Fail with a retryable error on the first N attempts, to exercise retries.",
    )
