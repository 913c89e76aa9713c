"""The schedule routes' tag and parameters."""

from __future__ import annotations

from aia_api.http.openapi import Tag, path_param

__all__ = ["NEEDS_READ", "NEEDS_WRITE", "SCHEDULES", "SCHEDULE_ID"]

SCHEDULES = Tag(
    "schedules",
    "Catalog tasks run on a cron expression (in a time zone) or an interval by Celery beat; "
    "each run is a task of the tenant, in its task list.",
)
NEEDS_READ = "Needs `schedules:read`."
NEEDS_WRITE = (
    "Needs `schedules:write` and the permission of the scheduled task's type (403 naming it)."
)
SCHEDULE_ID = path_param("ScheduleId", "schedule_id", "The schedule's id.")
