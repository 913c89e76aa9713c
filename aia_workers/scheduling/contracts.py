"""What a system schedule declares; ``schedules/system.py`` lists them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aia_workers.scheduling.cadence import Cadence

__all__ = ["SystemSchedule"]


class SystemSchedule(BaseModel):
    """A deployment-wide schedule: a plain Celery task of AIA's own, run for no tenant.

    Beat keeps one row per entry (tenant-less, id ``system:<name>``) and fires
    it with the same once-per-slot claim as tenants' schedules.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=150, pattern=r"^[A-Za-z0-9_.:-]+$")
    task: str = Field(min_length=1, max_length=200, description="The Celery task name.")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    # The task's route decides when None.
    queue: str | None = None
    cron: str | None = None
    timezone: str = "UTC"
    interval_seconds: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_cadence(self) -> SystemSchedule:
        self.cadence()  # raises InvalidCadenceError (a ValueError) when unusable
        return self

    def cadence(self) -> Cadence:
        return Cadence(
            cron=self.cron, timezone=self.timezone, interval_seconds=self.interval_seconds
        )

    def stored_payload(self) -> dict[str, Any]:
        """What the row's ``payload`` holds for it."""
        return {"args": list(self.args), "kwargs": dict(self.kwargs), "queue": self.queue}
