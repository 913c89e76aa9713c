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

# Filled by the domains as they gain periodic work (e.g. the drift sweep of
# every model with a production alias).
SYSTEM_SCHEDULES: list[SystemSchedule] = []
