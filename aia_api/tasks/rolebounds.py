"""What a role may ask of a submit beyond its permissions: how urgent, how long.

A priority puts a task ahead of every other tenant's on its queue, and a long
``diagnostics.sleep`` holds a worker for nothing; so below admin, priorities
stop at ``AIA_OPERATOR_MAX_PRIORITY`` and sleeps at
``AIA_DIAGNOSTICS_SLEEP_MAX_SECONDS``. A request past its role's bound is a
403 that names the bound, with the field in ``errors``.
"""

from __future__ import annotations

from typing import Any

from aia_api.http.problems import Problem
from aia_api.identity.authenticator import Principal
from aia_api.identity.roles import Role
from aia_api.tasks.requests import SubmitRequest
from aia_workers.backbone.broker import PRIORITY_MAX
from aia_workers.backbone.catalog import TaskType
from aia_workers.diagnostics.payloads import SLEEP_MAX_SECONDS
from aia_workers.settings import Settings

__all__ = ["check_role_bounds"]

_SLEEP = "diagnostics.sleep"


def check_role_bounds(
    principal: Principal,
    request: SubmitRequest,
    task_type: TaskType,
    payload: dict[str, Any],
    settings: Settings,
) -> None:
    """Raise a 403 Problem when ``request`` asks for more than the caller's role may."""
    if principal.role is Role.ADMIN:
        return
    bound = settings.operator_max_priority
    if request.priority is not None and request.priority > bound:
        raise _beyond(
            principal,
            "/priority",
            f"priority {request.priority} is above {bound}, the highest the {principal.role} "
            f"role may set; admins may set up to {PRIORITY_MAX}",
            bound,
        )
    longest = settings.diagnostics_sleep_max_seconds
    if task_type.name == _SLEEP and float(payload.get("seconds") or 0) > longest:
        raise _beyond(
            principal,
            "/payload/seconds",
            f"{_SLEEP} may sleep at most {longest:g} seconds for the {principal.role} role; "
            f"admins may ask for up to {SLEEP_MAX_SECONDS:g}",
            longest,
        )


def _beyond(principal: Principal, pointer: str, message: str, bound: float) -> Problem:
    return Problem(
        403,
        "beyond-role-bound",
        "Beyond your role's bound",
        message,
        errors=[
            {
                "loc": pointer.strip("/").split("/"),
                "pointer": pointer,
                "message": message,
                "type": "less_than_equal",
            }
        ],
        role=str(principal.role),
        bound=bound,
    )
