"""When a schedule runs next: cron in a time zone (across DST changes), intervals, catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aia_workers.scheduling.cadence import (
    Cadence,
    InvalidCadenceError,
    parse_cron,
    parse_timezone,
)


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def _slots(cadence: Cadence, start: datetime, count: int) -> list[datetime]:
    out, at = [], start
    for _ in range(count):
        at = cadence.next_slot(at, at)
        out.append(at)
    return out


def test_cron_is_read_in_its_time_zone_summer_and_winter() -> None:
    nine = Cadence(cron="0 9 * * *", timezone="Europe/Berlin")
    assert nine.first_slot(_utc(2026, 7, 1, 12)) == _utc(2026, 7, 2, 7)  # CEST, UTC+2
    assert nine.first_slot(_utc(2026, 1, 1, 12)) == _utc(2026, 1, 2, 8)  # CET, UTC+1


def test_a_time_the_spring_change_skips_runs_just_after_the_gap() -> None:
    # 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    daily = Cadence(cron="30 2 * * *", timezone="Europe/Berlin")
    assert _slots(daily, _utc(2026, 3, 28, 3), 2) == [
        _utc(2026, 3, 29, 1),  # 03:00 CEST
        _utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


def test_a_fixed_time_in_the_repeated_autumn_hour_runs_once() -> None:
    # 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    daily = Cadence(cron="30 2 * * *", timezone="Europe/Berlin")
    assert _slots(daily, _utc(2026, 10, 24, 3), 2) == [
        _utc(2026, 10, 25, 0, 30),  # 02:30 CEST, the first pass
        _utc(2026, 10, 26, 1, 30),  # the next day, 02:30 CET
    ]


def test_an_hourly_wildcard_keeps_firing_through_the_repeated_hour() -> None:
    hourly = Cadence(cron="0 * * * *", timezone="Europe/Berlin")
    assert _slots(hourly, _utc(2026, 10, 24, 23, 30), 4) == [
        _utc(2026, 10, 25, 0),  # 02:00 CEST
        _utc(2026, 10, 25, 1),  # 02:00 CET
        _utc(2026, 10, 25, 2),  # 03:00 CET
        _utc(2026, 10, 25, 3),
    ]


def test_interval_slots_stay_on_their_grid() -> None:
    every = Cadence(interval_seconds=90)
    start = _utc(2026, 1, 1)
    assert every.first_slot(start) == start + timedelta(seconds=90)
    # Fired a little late: the next slot is still one interval after the slot.
    due = start + timedelta(seconds=90)
    assert every.next_slot(due, due + timedelta(seconds=5)) == due + timedelta(seconds=90)


def test_a_late_interval_fires_once_then_waits_for_a_slot_to_come() -> None:
    every = Cadence(interval_seconds=60)
    due = _utc(2026, 1, 1, 12)
    now = due + timedelta(minutes=10, seconds=30)  # ten slots were missed
    after = every.next_slot(due, now)
    assert after == due + timedelta(minutes=11)
    assert now < after <= now + timedelta(seconds=60)


def test_a_late_cron_fires_once_then_waits_for_a_time_to_come() -> None:
    quarter = Cadence(cron="*/15 * * * *")
    due = _utc(2026, 1, 1, 12)
    now = _utc(2026, 1, 3, 8, 7)  # two days of slots missed
    assert quarter.next_slot(due, now) == _utc(2026, 1, 3, 8, 15)


def test_cron_is_normalised_and_needs_five_fields() -> None:
    assert parse_cron("  */5   *  * * mon ") == "*/5 * * * mon"
    for bad in (
        "* * * *",
        "0 0 * * * *",
        "61 * * * *",
        "* * * * funday",
        "",
        "0 0 31 2 *",  # never comes
        "R * * * *",  # random, so each beat would pick another minute
        "H(0-29) * * * *",
    ):
        with pytest.raises(InvalidCadenceError) as caught:
            parse_cron(bad)
        assert caught.value.field == "cron"


def test_time_zones_are_iana_names() -> None:
    assert str(parse_timezone("America/New_York")) == "America/New_York"
    for bad in ("Mars/Olympus", "../../etc/passwd", "", "+02:00"):
        with pytest.raises(InvalidCadenceError) as caught:
            parse_timezone(bad)
        assert caught.value.field == "timezone"


def test_a_cadence_is_cron_or_interval_never_both_nor_neither() -> None:
    with pytest.raises(InvalidCadenceError):
        Cadence()
    with pytest.raises(InvalidCadenceError):
        Cadence(cron="* * * * *", interval_seconds=60)
    with pytest.raises(InvalidCadenceError) as caught:
        Cadence(interval_seconds=0)
    assert caught.value.field == "interval_seconds"
    with pytest.raises(InvalidCadenceError) as caught:
        Cadence(cron="* * * * *", timezone="Nowhere/Land")
    assert caught.value.field == "timezone"
