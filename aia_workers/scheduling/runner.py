"""One pass of beat over the schedules: claim each due slot once and launch its task.

The launcher (``Launcher``) is how a run leaves beat: a tenant's schedule
becomes a recorded AIA task of that tenant, a system schedule a plain Celery
task. It is passed in, so this module knows neither Celery nor Redis.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aia_workers.errors import AiaError
from aia_workers.scheduling.store import Due, ScheduleStore

__all__ = ["CannotRunError", "Launched", "Launcher", "RetryLaterError", "ScheduleRunner"]

log = logging.getLogger(__name__)

# Task ids of system runs are derived from (schedule, slot), so a slot taken
# over from a beat that died after sending carries the id it was sent with.
_SYSTEM_RUNS = uuid.UUID("6f0d5d52-6c1e-4d0e-9a57-3c6f1f0c2a11")


class RetryLaterError(AiaError):
    """Raised by a launcher when a run could not start for now (an outage, a busy tenant)."""


class CannotRunError(AiaError):
    """Raised by a launcher when a run can never start as stored (unknown type, invalid payload)."""


@dataclass(frozen=True, slots=True)
class Launched:
    task_id: str
    # Set when the task exists but failed at once (the broker refused it).
    error: str | None = None


class Launcher(Protocol):
    """Starts runs; raises RetryLaterError or CannotRunError when it cannot."""

    def submit(
        self, *, tenant: str, type_name: str, payload: Mapping[str, Any], idempotency: str
    ) -> Launched: ...

    def send(
        self,
        *,
        task: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        queue: str | None,
        task_id: str,
    ) -> Launched: ...


class ScheduleRunner:
    """Fires what is due, through a store shared with other beats and a launcher."""

    def __init__(
        self,
        store: ScheduleStore,
        launcher: Launcher,
        *,
        lease_seconds: float,
        retry_seconds: float,
        batch: int = 100,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._launcher = launcher
        self._lease = timedelta(seconds=lease_seconds)
        self._retry = timedelta(seconds=retry_seconds)
        self._batch = batch
        self._clock = clock

    def run_due(self) -> int:
        """Claim and launch every slot due now (up to a batch); how many this beat won."""
        won = 0
        for due in self._store.due(self._clock(), self._batch):
            now = self._clock()
            try:
                claimed = self._store.claim(due, now, now + self._lease)
            except ValueError:
                # No next slot can be computed for it (a row written past the
                # API's checks): the others still run.
                log.exception("schedule %s cannot be claimed", due.schedule_id)
                continue
            if not claimed:
                continue
            won += 1
            self._launch(due)
        return won

    def _launch(self, due: Due) -> None:
        try:
            launched = self._start(due)
        except CannotRunError as exc:
            log.error("schedule %s cannot run: %s", due.schedule_id, exc)
            self._store.finish(due, self._clock(), task_id=None, error=str(exc))
        except Exception as exc:
            # RetryLaterError, or an outage the launcher did not name: the slot
            # stays pending under its idempotency key and is tried again.
            log.warning(
                "schedule %s slot %s not started, retrying in %ss: %s",
                due.schedule_id,
                due.slot.isoformat(),
                self._retry.total_seconds(),
                exc,
                exc_info=not isinstance(exc, RetryLaterError),
            )
            self._store.defer(due, self._clock() + self._retry, str(exc) or type(exc).__name__)
        else:
            log.info(
                "schedule %s slot %s started task %s",
                due.schedule_id,
                due.slot.isoformat(),
                launched.task_id,
            )
            self._store.finish(due, self._clock(), task_id=launched.task_id, error=launched.error)

    def _start(self, due: Due) -> Launched:
        if due.tenant_id is not None:
            return self._launcher.submit(
                tenant=due.tenant_id,
                type_name=due.task,
                payload=due.payload,
                idempotency=due.idempotency,
            )
        payload = due.payload if isinstance(due.payload, Mapping) else {}
        return self._launcher.send(
            task=due.task,
            args=list(payload.get("args") or []),
            kwargs=dict(payload.get("kwargs") or {}),
            queue=payload.get("queue"),
            task_id=str(uuid.uuid5(_SYSTEM_RUNS, due.idempotency)),
        )
