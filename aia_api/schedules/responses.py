"""Response models of the schedule routes (shared ones: ``aia_api.http.responses``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from aia_api.http.responses import Closed, PageLinks, SelfLinks

__all__ = ["LastRun", "SchedulePage", "ScheduleView"]


class LastRun(Closed):
    slot_at: datetime = Field(description="The slot that fired.")
    submitted_at: datetime = Field(description="When beat submitted its task.")
    task_id: str | None = Field(description="None when the slot could not run (see `error`).")
    status: str | None = Field(
        description="The task's status now, from its record (None once it is gone)."
    )
    error: str | None = Field(description="Why the slot could not run, if it could not.")


class ScheduleView(Closed):
    id: str
    name: str
    type: str
    payload: dict[str, Any]
    cron: str | None
    timezone: str
    interval_seconds: int | None
    enabled: bool
    next_run_at: datetime | None = Field(description="None while disabled.")
    last_run: LastRun | None = Field(description="None until the first slot fired.")
    retrying: str | None = Field(
        description="Why the slot due now has not started yet (it is being retried)."
    )
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    links: SelfLinks


class SchedulePage(Closed):
    items: list[ScheduleView]
    next_cursor: str | None
    links: PageLinks
