"""System schedules: a typed list in schedules/system.py, replaceable by AIA_SYSTEM_SCHEDULES."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aia_workers.scheduling.beat import declared_system_schedules
from aia_workers.scheduling.contracts import SystemSchedule
from aia_workers.settings import Settings
from schedules.system import SYSTEM_SCHEDULES


def test_the_declared_list_is_typed_and_empty_until_a_domain_adds_one() -> None:
    assert all(isinstance(s, SystemSchedule) for s in SYSTEM_SCHEDULES)
    assert len({s.name for s in SYSTEM_SCHEDULES}) == len(SYSTEM_SCHEDULES)
    assert declared_system_schedules(Settings()) == list(SYSTEM_SCHEDULES)


def test_the_setting_replaces_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIA_SYSTEM_SCHEDULES",
        '[{"name": "sweep", "task": "drift.sweep", "cron": "0 * * * *", "timezone": "UTC"}]',
    )
    (sweep,) = declared_system_schedules(Settings())
    assert sweep.cadence().cron == "0 * * * *"
    assert sweep.stored_payload() == {"args": [], "kwargs": {}, "queue": None}
    monkeypatch.setenv("AIA_SYSTEM_SCHEDULES", "[]")
    assert declared_system_schedules(Settings()) == []


def test_an_entry_needs_one_valid_cadence() -> None:
    with pytest.raises(ValidationError):
        SystemSchedule(name="x", task="t")
    with pytest.raises(ValidationError):
        SystemSchedule(name="x", task="t", cron="* * *")
    with pytest.raises(ValidationError):
        SystemSchedule(name="x", task="t", interval_seconds=5, cron="* * * * *")
    with pytest.raises(ValidationError):
        SystemSchedule(name="has space", task="t", interval_seconds=5)
