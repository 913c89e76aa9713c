"""System schedules that every AIA deployment runs under Celery beat.

Beat (``aia_workers.scheduling.beat``) keeps one tenant-less row per entry
and fires each with the same once-per-slot claim as tenants' schedules,
sending the plain Celery task (AIA's own, recorded for no tenant).
``AIA_SYSTEM_SCHEDULES`` (a JSON list of the same entries) replaces this list,
and ``[]`` runs none.
"""

from __future__ import annotations

from aia_workers.scheduling.contracts import SystemSchedule

__all__ = ["SYSTEM_SCHEDULES"]

SYSTEM_SCHEDULES: list[SystemSchedule] = [
    # A drift check of every model's production version (aia_workers.drift.sweep),
    # hourly: each check reads that version's prediction log over the window it
    # keeps, so a drifted model is reported within the hour. Off the hour's first
    # minute, where every other hourly job in a cluster tends to start.
    SystemSchedule(name="drift-sweep", task="drift.sweep", queue="drift", cron="7 * * * *"),
]
