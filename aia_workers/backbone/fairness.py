"""Fair shares of each queue: how many tasks one tenant may run on it at once.

Without a bound, one tenant that submits many long tasks fills every worker
of a queue and the others wait behind it. So each tenant holds a slot per
running task, in a sorted set per (queue, tenant) in Redis that every worker
process and machine shares; the start that finds all the tenant's slots
taken does not run the task but puts it back to wait (``TRANSITION_LUA``'s
``deferred`` outcome, ``aia_workers.backbone.deferral``), and the tenants behind it run
meanwhile.

A slot is scored by when it lapses: the process running the task renews it
(``aia_workers.backbone.slots``), and a process that is killed stops renewing, so its
slots come back by themselves one lease later. The outcome of the task (or a
retry, which waits outside any slot) gives its slot back at once.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from aia_workers.backbone.keys import slots_key
from aia_workers.settings import Settings

__all__ = ["MAX_DEFER_SECONDS", "FairShare"]

# The longest a task over its tenant's cap waits before it asks again. Waits
# grow with the tenant's backlog (see FairShare.defer_seconds), so that a
# backlog of thousands costs a few checks a second, not thousands; a worker
# holds each waiting message in memory until then.
MAX_DEFER_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class FairShare:
    """Each tenant's cap on running tasks per queue, and how a task over it waits.

    ``caps`` maps a queue to its cap and ``default_cap`` serves the others;
    a cap of 0 leaves that queue unbounded. ``lease_seconds`` is how long a
    slot outlives the last renewal by its process; ``defer_seconds`` the
    shortest wait of a task put back.
    """

    default_cap: int
    lease_seconds: float
    defer_seconds: float
    caps: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_settings(cls, settings: Settings) -> FairShare:
        return cls(
            default_cap=settings.tenant_concurrency_default,
            lease_seconds=settings.tenant_slot_lease_seconds,
            defer_seconds=settings.tenant_defer_seconds,
            caps=MappingProxyType(
                {q.value: cap for q, cap in settings.tenant_queue_concurrency.items()}
            ),
        )

    def cap_for(self, queue: str) -> int:
        """Tasks one tenant may run at once on ``queue``; 0: no cap."""
        return self.caps.get(queue, self.default_cap)

    def slot_for(self, queue: str, tenant: str) -> str | None:
        """The slot set a task of ``tenant`` on ``queue`` takes when it starts; None: no cap."""
        if not queue or not tenant or self.cap_for(queue) == 0:
            return None
        return slots_key(queue, tenant)

    @property
    def renew_seconds(self) -> float:
        """How often a running task's slot is renewed: three times per lease."""
        return self.lease_seconds / 3

    def defer_seconds_for(self, waiting: int, cap: int) -> float:
        """How long a task put back waits before it asks for a slot again.

        ``waiting`` tasks of the tenant wait for ``cap`` slots: each waits
        ``defer_seconds`` times their ratio (at least once, at most
        MAX_DEFER_SECONDS), so that together they ask about ``cap /
        defer_seconds`` times a second however many they are, and a freed slot
        is taken within a fraction of ``defer_seconds``. Jittered by a quarter
        either way, so that tasks put back together do not ask together.
        """
        ratio = max(1.0, waiting / max(cap, 1))
        wait = min(MAX_DEFER_SECONDS, self.defer_seconds * ratio)
        return wait * random.uniform(0.75, 1.25)
