"""When a schedule runs: a 5-field cron expression in an IANA time zone, or an interval.

Cron times come from croniter, read in the schedule's own zone, so "0 9 * * *"
in Europe/Berlin is 09:00 there in summer and in winter. Across a DST change
the rules are Vixie cron's: a time the spring change skips fires at the first
instant after the gap (croniter's own behaviour), and a fixed time in the hour
that autumn repeats fires once, while an hour-wildcard expression ("*/15 * * * *")
keeps firing through both passes of that hour, as its real minutes go by.

Interval slots lie on one grid through the schedule's first slot, so however
late a beat looks, the next slot is the first grid point after now: one run
catches up, never one per missed slot.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

__all__ = [
    "Cadence",
    "InvalidCadenceError",
    "parse_cron",
    "parse_timezone",
]


class InvalidCadenceError(ValueError):
    """Raised when a cron expression, a time zone or an interval cannot be used."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_cron(expression: str) -> str:
    """``expression`` with its fields single-spaced; InvalidCadenceError unless 5 valid fields."""
    fields = expression.split()
    if len(fields) != 5:
        raise InvalidCadenceError(
            "cron",
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"not {len(fields)}: e.g. '*/15 * * * *' or '0 3 * * mon'",
        )
    for field in fields:
        for part in re.split(r"[,/-]", field.upper()):
            # croniter's random (R) and hashed (H) fields would differ between beats.
            if part in ("R", "H") or part.startswith("H("):
                raise InvalidCadenceError(
                    "cron", f"{field!r}: random (R) and hashed (H) fields are not supported"
                )
    normal = " ".join(fields)
    try:
        # A time that never comes (30 February) fails here rather than in beat.
        croniter(normal, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise InvalidCadenceError("cron", f"not a valid cron expression: {exc}") from None
    return normal


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (e.g. ``Europe/Berlin``); InvalidCadenceError when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidCadenceError(
            "timezone", f"{name!r} is not an IANA time zone name such as 'UTC' or 'Europe/Berlin'"
        ) from None


@dataclass(frozen=True, slots=True)
class Cadence:
    """Exactly one of ``cron`` (with ``timezone``) or ``interval_seconds``."""

    cron: str | None = None
    timezone: str = "UTC"
    interval_seconds: int | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval_seconds is None):
            raise InvalidCadenceError("cron", "give exactly one of cron or interval_seconds")
        if self.cron is not None:
            object.__setattr__(self, "cron", parse_cron(self.cron))
            parse_timezone(self.timezone)
        elif self.interval_seconds is not None and self.interval_seconds < 1:
            raise InvalidCadenceError("interval_seconds", "an interval is at least 1 second")

    def first_slot(self, now: datetime) -> datetime:
        """The first slot of a schedule made (or re-timed, or enabled) at ``now``."""
        if self.interval_seconds is not None:
            return now + timedelta(seconds=self.interval_seconds)
        return self._next_cron(now)

    def next_slot(self, due: datetime, now: datetime) -> datetime:
        """The slot after ``due`` once ``due`` fires at ``now``: the first one later than both.

        Slots missed while no beat ran are skipped, so a late beat fires
        ``due`` once and then waits for a slot still to come.
        """
        after = max(due, now)
        if self.interval_seconds is not None:
            step = timedelta(seconds=self.interval_seconds)
            missed = math.floor((after - due) / step)
            return due + (missed + 1) * step
        return self._next_cron(after)

    def _next_cron(self, after: datetime) -> datetime:
        assert self.cron is not None
        zone = ZoneInfo(self.timezone)
        fixed_hour = self.cron.split()[1] != "*"
        times = croniter(self.cron, after.astimezone(zone))
        while True:
            slot: datetime = times.get_next(datetime)
            # The second pass of an hour that autumn repeats (fold=1): a fixed
            # time there already fired on the first pass.
            if fixed_hour and slot.fold == 1 and _repeated(slot):
                continue
            return slot.astimezone(UTC)


def _repeated(slot: datetime) -> bool:
    """Whether ``slot``'s wall time also happened an offset earlier (the fall-back hour)."""
    return slot.replace(fold=0).utcoffset() != slot.utcoffset()
