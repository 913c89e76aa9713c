"""System schedules: a typed list in schedules/system.py, replaceable by AIA_SYSTEM_SCHEDULES."""

from __future__ import annotations

import importlib

import pytest
from pydantic import ValidationError

from aia_workers.backbone.catalog import modules_for_queues
from aia_workers.celery import app as worker_app
from aia_workers.scheduling.beat import declared_system_schedules
from aia_workers.scheduling.contracts import SystemSchedule
from aia_workers.settings import Settings
from schedules.system import SYSTEM_SCHEDULES


def test_the_declared_list_is_typed_and_each_entry_runs_on_its_queue() -> None:
    assert all(isinstance(s, SystemSchedule) for s in SYSTEM_SCHEDULES)
    assert len({s.name for s in SYSTEM_SCHEDULES}) == len(SYSTEM_SCHEDULES)
    assert declared_system_schedules(Settings()) == list(SYSTEM_SCHEDULES)
    assert "drift.sweep" in {s.task for s in SYSTEM_SCHEDULES}
    for entry in SYSTEM_SCHEDULES:
        # The worker of the entry's queue imports a module that registers the task.
        modules = modules_for_queues([entry.queue] if entry.queue else None)
        for module in modules:
            importlib.import_module(module)
        assert entry.task in worker_app.tasks, (entry.name, modules)


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
