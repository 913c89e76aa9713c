"""What a schedule must pass before it is stored: a usable cadence, a catalog task the
caller may run (with its role's bounds), and a payload that fits that task."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from aia_api.http.problems import Problem, field_errors
from aia_api.identity.authenticator import Principal
from aia_api.tasks.requests import SubmitRequest
from aia_api.tasks.rolebounds import check_role_bounds
from aia_workers.backbone.catalog import TaskType, get_task_type
from aia_workers.errors import UnknownTaskTypeError
from aia_workers.scheduling.cadence import Cadence, InvalidCadenceError
from aia_workers.settings import Settings

__all__ = ["check_cadence", "check_task", "invalid"]


def invalid(field: str, message: str, kind: str = "value_error") -> Problem:
    """A 422 whose one error names ``field`` of the body."""
    return Problem(
        422,
        "validation-error",
        "Invalid request",
        message,
        errors=[{"loc": [field], "pointer": f"/{field}", "message": message, "type": kind}],
    )


def check_cadence(
    cron: str | None, timezone: str, interval_seconds: int | None, settings: Settings
) -> Cadence:
    """The schedule's cadence, or a 422 naming the field at fault."""
    if cron is None and interval_seconds is None:
        raise invalid("cron", "give cron (with timezone) or interval_seconds", "missing")
    if cron is not None and interval_seconds is not None:
        raise invalid("interval_seconds", "give cron or interval_seconds, not both", "conflict")
    least = settings.schedule_min_interval_seconds
    if interval_seconds is not None and interval_seconds < least:
        raise invalid(
            "interval_seconds",
            f"interval_seconds must be at least {least} (AIA_SCHEDULE_MIN_INTERVAL_SECONDS)",
            "greater_than_equal",
        )
    try:
        return Cadence(cron=cron, timezone=timezone, interval_seconds=interval_seconds)
    except InvalidCadenceError as exc:
        raise invalid(exc.field, str(exc)) from None


def check_task(
    principal: Principal, type_name: str, payload: dict[str, Any], settings: Settings
) -> tuple[TaskType, dict[str, Any]]:
    """The task type and normalised payload; a 422 when unknown or invalid, a 403 when the
    caller's role may not submit it (or not with this payload)."""
    try:
        task_type = get_task_type(type_name)
    except UnknownTaskTypeError as exc:
        raise invalid("type", str(exc), "unknown_type") from None
    try:
        normal = task_type.payload.model_validate(payload).model_dump(mode="json")
    except ValidationError as exc:
        raise Problem(
            422,
            "validation-error",
            "Invalid request",
            "the payload does not fit the task type; see errors for each field",
            errors=field_errors(exc, ("payload",)),
        ) from None
    if not principal.can(task_type.permission):
        raise Problem(
            403,
            "forbidden",
            "Forbidden",
            f"scheduling {task_type.name} needs the {task_type.permission} permission, which "
            f"the {principal.role} role does not have",
            permission=task_type.permission,
        )
    # Each run is submitted as this caller could submit it by hand, no further.
    check_role_bounds(
        principal, SubmitRequest(type=task_type.name, payload=normal), task_type, normal, settings
    )
    return task_type, normal
