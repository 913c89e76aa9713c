"""Roles, each inheriting the permissions of the one below it."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Permission", "Role", "permissions_for"]


class Permission(StrEnum):
    TASKS_READ = "tasks:read"
    TASKS_SUBMIT = "tasks:submit"
    TASKS_CANCEL = "tasks:cancel"
    STATUS_READ = "status:read"
    KEYS_MANAGE = "keys:manage"
    USERS_MANAGE = "users:manage"
    AUDIT_READ = "audit:read"
    ML_READ = "ml:read"
    ML_TRAIN = "ml:train"
    ML_PREDICT = "ml:predict"
    MODELS_MANAGE = "models:manage"
    WEBHOOKS_MANAGE = "webhooks:manage"
    SCHEDULES_READ = "schedules:read"
    # Besides the permission of the scheduled task's own type.
    SCHEDULES_WRITE = "schedules:write"
    AGENTS_READ = "agents:read"
    AGENTS_RUN = "agents:run"
    AGENTS_MANAGE = "agents:manage"
    # Running diagnostics.worker_crash, which kills the worker process it runs in.
    DIAGNOSTICS_CRASH = "diagnostics:crash"


class Role(StrEnum):
    """``viewer`` < ``operator`` < ``admin``: each can do all the one below can."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    def covers(self, other: Role) -> bool:
        """True when this role may act with (or grant) ``other``."""
        return self.rank >= other.rank

    def at_most(self, ceiling: Role) -> Role:
        """This role, or ``ceiling`` when that is lower."""
        return self if ceiling.covers(self) else ceiling


_ORDER = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)

# What each role adds to the one below it.
_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset(
        {
            Permission.TASKS_READ,
            Permission.STATUS_READ,
            Permission.ML_READ,
            Permission.SCHEDULES_READ,
            Permission.AGENTS_READ,
        }
    ),
    Role.OPERATOR: frozenset(
        {
            Permission.TASKS_SUBMIT,
            Permission.TASKS_CANCEL,
            Permission.ML_TRAIN,
            Permission.ML_PREDICT,
            Permission.MODELS_MANAGE,
            Permission.SCHEDULES_WRITE,
            Permission.AGENTS_RUN,
            Permission.AGENTS_MANAGE,
        }
    ),
    Role.ADMIN: frozenset(
        {
            Permission.KEYS_MANAGE,
            Permission.USERS_MANAGE,
            Permission.AUDIT_READ,
            Permission.WEBHOOKS_MANAGE,
            Permission.DIAGNOSTICS_CRASH,
        }
    ),
}

_RESOLVED: dict[Role, frozenset[Permission]] = {
    role: frozenset().union(*(_GRANTS[r] for r in _ORDER[: i + 1])) for i, role in enumerate(_ORDER)
}


def permissions_for(role: Role) -> frozenset[Permission]:
    """Every permission ``role`` holds, its own and inherited."""
    return _RESOLVED[role]
