"""The OpenAPI parameters of the task and stream routes, kept once under components."""

from __future__ import annotations

from aia_api.http.openapi import Param, path_param
from aia_workers.backbone.states import Status

__all__ = ["AFTER", "IDEMPOTENCY_KEY", "LAST_EVENT_ID", "STATUS", "TASK_ID", "TICKET", "TYPE"]

TASK_ID = path_param("TaskId", "task_id", "The task's id, as returned by submit.")

IDEMPOTENCY_KEY = Param(
    "IdempotencyKey",
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            "Submitting again with the same key and body returns the first task "
            "(`Idempotent-Replayed: true`); with another body, 409."
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
)

LAST_EVENT_ID = Param(
    "LastEventId",
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "description": "Resume after this event (`seq`); browsers send it on reconnect.",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    },
)

AFTER = Param(
    "After",
    {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "Like Last-Event-ID, for clients that cannot set headers.",
        "schema": {"type": "integer", "minimum": 0, "maximum": 10**18},
    },
)

# Inline rather than under components: each stream route lists it as its own.
TICKET = {
    "name": "ticket",
    "in": "query",
    "required": False,
    "description": "A stream ticket, in place of the Authorization or X-API-Key header.",
    "schema": {"type": "string", "maxLength": 64},
}

STATUS = Param(
    "Status",
    {
        "name": "status",
        "in": "query",
        "required": False,
        "description": "Only tasks in these statuses; repeat for several.",
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "items": {"type": "string", "enum": [s.value for s in Status]}},
    },
)

TYPE = Param(
    "Type",
    {
        "name": "type",
        "in": "query",
        "required": False,
        "description": "Only tasks of these types; repeat for several.",
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "items": {"type": "string"}},
    },
)
