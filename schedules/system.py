"""System schedules that every AIA deployment runs under Celery beat."""

from __future__ import annotations

from typing import Any

__all__ = ["SYSTEM_SCHEDULE"]

# Filled by the domains as they gain periodic work (drift checks, retraining).
SYSTEM_SCHEDULE: dict[str, dict[str, Any]] = {}
