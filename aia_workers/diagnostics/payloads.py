"""Payload schemas of the diagnostics task types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SLEEP_MAX_SECONDS", "CrashMode", "CrashPayload", "SleepPayload"]

CrashMode = Literal["exit", "segfault", "abort"]

# The longest sleep anyone may ask for; below admin the API allows far less
# (AIA_DIAGNOSTICS_SLEEP_MAX_SECONDS), since a long sleep only holds a worker.
SLEEP_MAX_SECONDS = 600.0


class SleepPayload(BaseModel):
    """Sleep ``seconds`` in total, split into ``steps`` with progress after each."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(
        ge=0,
        le=SLEEP_MAX_SECONDS,
        description="Total time to sleep, in seconds. Above AIA_DIAGNOSTICS_SLEEP_MAX_SECONDS "
        "(60 by default) for admins only.",
    )
    steps: int = Field(default=1, ge=1, le=1000, description="Progress reports to make.")
    fail: bool = Field(default=False, description="Fail after the last step.")
    transient_failures: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Fail with a retryable error on the first N attempts, to exercise retries.",
    )


class CrashPayload(BaseModel):
    """Kill the worker process that runs the task, the way ``mode`` says."""

    model_config = ConfigDict(extra="forbid")

    mode: CrashMode = Field(
        default="exit",
        description="`exit`: the process exits at once, skipping all cleanup (as when it is "
        "killed); `segfault`: it dies of SIGSEGV, as a crashing native library does; "
        "`abort`: it dies of SIGABRT.",
    )
