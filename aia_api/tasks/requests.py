"""Request models of the task routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aia_workers.backbone.broker import PRIORITY_MAX

__all__ = ["SubmitRequest"]


class SubmitRequest(BaseModel):
    """``POST /v1/tasks``: what to run, with what, and when."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=128, description="A task type from the catalog.")
    payload: dict[str, Any] = Field(default_factory=dict)
    countdown: float | None = Field(
        default=None, ge=0, description="Seconds to wait before the task may start."
    )
    priority: int | None = Field(
        default=None,
        ge=0,
        le=PRIORITY_MAX,
        description="0-9; higher runs sooner. Operators may set up to "
        "AIA_OPERATOR_MAX_PRIORITY (5 by default), admins up to 9.",
    )
