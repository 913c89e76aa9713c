"""Request models of the schedule routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aia_workers.scheduling.cadence import parse_cron, parse_timezone

__all__ = ["SchedulePatch", "ScheduleRequest"]

_CRON = "5 fields (minute hour day-of-month month day-of-week), read in `timezone`."
_INTERVAL = "Seconds between runs; at least AIA_SCHEDULE_MIN_INTERVAL_SECONDS (60)."
_MAX_INTERVAL = 366 * 86_400


def _cron(value: str | None) -> str | None:
    return None if value is None else parse_cron(value)


def _zone(value: str | None) -> str | None:
    if value is not None:
        parse_timezone(value)
    return value


class ScheduleRequest(BaseModel):
    """A schedule: which catalog task to run with what payload, and when (cron or interval)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Unique in the tenant.")
    type: str = Field(min_length=1, max_length=128, description="A task type from the catalog.")
    payload: dict[str, Any] = Field(default_factory=dict, description="As the type's submit.")
    cron: str | None = Field(default=None, max_length=200, description=_CRON)
    timezone: str = Field(default="UTC", max_length=64, description="An IANA time zone name.")
    interval_seconds: int | None = Field(
        default=None, ge=1, le=_MAX_INTERVAL, description=_INTERVAL
    )
    enabled: bool = True

    _check_cron = field_validator("cron")(_cron)
    _check_zone = field_validator("timezone")(_zone)


class SchedulePatch(BaseModel):
    """Change a schedule; fields left out stay. Setting ``cron`` drops the interval, and
    setting ``interval_seconds`` drops the cron expression."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    payload: dict[str, Any] | None = None
    cron: str | None = Field(default=None, max_length=200, description=_CRON)
    timezone: str | None = Field(default=None, max_length=64)
    interval_seconds: int | None = Field(
        default=None, ge=1, le=_MAX_INTERVAL, description=_INTERVAL
    )
    enabled: bool | None = None

    _check_cron = field_validator("cron")(_cron)
    _check_zone = field_validator("timezone")(_zone)
