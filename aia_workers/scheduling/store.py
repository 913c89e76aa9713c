"""The schedules table as beat uses it: what is due, claiming a slot once, recording its run.

Every change a beat makes is one conditional UPDATE (compare-and-set) on the
row, so any number of beats may run at once: of those that saw a slot due,
the one whose UPDATE matched the slot it read wins, and the others match no
row. A schedule created, changed or deleted over the API is simply a row
that the next poll reads; beats cache nothing between polls.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy.exc
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.schedules import Schedule
from aia_workers.scheduling.cadence import Cadence
from aia_workers.scheduling.contracts import SystemSchedule

__all__ = ["Due", "ScheduleStore", "system_id"]

log = logging.getLogger(__name__)

_SYSTEM = "system:"


def system_id(name: str) -> str:
    """The row id of the system schedule ``name``."""
    return _SYSTEM + name


@dataclass(frozen=True, slots=True)
class Due:
    """A slot to fire: a schedule's ``next_run_at`` that came due, or a pending slot whose
    lease ran out (``lease`` then holds the lapsed ``pending_until`` it was read with)."""

    schedule_id: str
    tenant_id: str | None
    task: str
    payload: Any
    cadence: Cadence
    slot: datetime
    lease: datetime | None = None

    @property
    def system(self) -> bool:
        return self.tenant_id is None

    @property
    def idempotency(self) -> str:
        """The same for every attempt at this slot, by any beat."""
        return f"schedule:{self.schedule_id}:{self.slot.isoformat()}"


class ScheduleStore:
    """Reads due slots and moves schedules through claim, submit and retry."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def due(self, now: datetime, limit: int) -> list[Due]:
        """Up to ``limit`` slots due at ``now``, oldest first; lapsed pending ones before new."""
        with self._sessions() as session:
            lapsed = session.scalars(
                select(Schedule)
                .where(
                    Schedule.pending_slot_at.is_not(None),
                    Schedule.pending_until <= now,
                    Schedule.enabled.is_(True),
                )
                .order_by(Schedule.pending_until)
                .limit(limit)
            ).all()
            fresh = session.scalars(
                select(Schedule)
                .where(
                    Schedule.enabled.is_(True),
                    Schedule.next_run_at <= now,
                    Schedule.pending_slot_at.is_(None),
                )
                .order_by(Schedule.next_run_at)
                .limit(max(0, limit - len(lapsed)))
            ).all()
            out = []
            for row in lapsed:
                assert row.pending_slot_at is not None
                out.append(_due(row, row.pending_slot_at, lease=row.pending_until))
            for row in fresh:
                assert row.next_run_at is not None
                out.append(_due(row, row.next_run_at))
            return out

    def claim(self, due: Due, now: datetime, lease_until: datetime) -> bool:
        """Take ``due`` for this beat until ``lease_until``; False when another beat has it.

        A fresh slot moves ``next_run_at`` on to the slot after it in the same
        statement, so the schedule is never due twice for one slot.
        """
        if due.lease is not None:
            stmt = (
                update(Schedule)
                .where(
                    Schedule.id == due.schedule_id,
                    Schedule.enabled.is_(True),
                    Schedule.pending_slot_at == due.slot,
                    Schedule.pending_until == due.lease,
                )
                .values(pending_until=lease_until)
            )
        else:
            stmt = (
                update(Schedule)
                .where(
                    Schedule.id == due.schedule_id,
                    Schedule.enabled.is_(True),
                    Schedule.next_run_at == due.slot,
                    Schedule.pending_slot_at.is_(None),
                )
                .values(
                    next_run_at=due.cadence.next_slot(due.slot, now),
                    pending_slot_at=due.slot,
                    pending_until=lease_until,
                )
            )
        return self._compare_and_set(stmt)

    def finish(
        self,
        due: Due,
        now: datetime,
        *,
        task_id: str | None,
        error: str | None = None,
    ) -> None:
        """Record that ``due`` ran as ``task_id`` (None when it could not run, for ``error``)."""
        self._compare_and_set(
            update(Schedule)
            .where(Schedule.id == due.schedule_id, Schedule.pending_slot_at == due.slot)
            .values(
                pending_slot_at=None,
                pending_until=None,
                last_slot_at=due.slot,
                last_run_at=now,
                last_task_id=task_id,
                last_error=_clip(error),
            )
        )

    def defer(self, due: Due, until: datetime, error: str) -> None:
        """Keep ``due`` pending, to be tried again (by any beat) from ``until``."""
        self._compare_and_set(
            update(Schedule)
            .where(Schedule.id == due.schedule_id, Schedule.pending_slot_at == due.slot)
            .values(pending_until=until, last_error=_clip(error))
        )

    def sync_system(self, declared: Sequence[SystemSchedule], now: datetime) -> None:
        """Make the tenant-less rows match ``declared``: add, change and remove.

        Every beat does this at start; two doing it at once write the same rows.
        """
        wanted = {system_id(s.name): s for s in declared}
        with self._sessions.begin() as session:
            session.execute(
                delete(Schedule).where(
                    Schedule.tenant_id.is_(None), Schedule.id.not_in(list(wanted) or [""])
                )
            )
            for row in session.scalars(select(Schedule).where(Schedule.id.in_(list(wanted)))):
                spec = wanted.pop(row.id)
                _apply_system(row, spec, now)
        for row_id, spec in wanted.items():
            try:
                with self._sessions.begin() as session:
                    session.add(_new_system(row_id, spec, now))
            except sqlalchemy.exc.IntegrityError:
                log.debug("system schedule %s was added by another beat", spec.name)

    def _compare_and_set(self, stmt: Any) -> bool:
        with self._sessions.begin() as session:
            result = session.execute(stmt, execution_options={"synchronize_session": False})
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _due(row: Schedule, slot: datetime, *, lease: datetime | None = None) -> Due:
    return Due(
        schedule_id=row.id,
        tenant_id=row.tenant_id,
        task=row.task,
        payload=row.payload,
        cadence=Cadence(
            cron=row.cron, timezone=row.timezone, interval_seconds=row.interval_seconds
        ),
        slot=slot,
        lease=lease,
    )


def _new_system(row_id: str, spec: SystemSchedule, now: datetime) -> Schedule:
    return Schedule(
        id=row_id,
        tenant_id=None,
        name=spec.name,
        task=spec.task,
        payload=spec.stored_payload(),
        cron=spec.cadence().cron,
        timezone=spec.timezone,
        interval_seconds=spec.interval_seconds,
        enabled=True,
        created_by="system",
        created_at=now,
        updated_at=now,
        next_run_at=spec.cadence().first_slot(now),
    )


def _apply_system(row: Schedule, spec: SystemSchedule, now: datetime) -> None:
    cadence = spec.cadence()
    retimed = (row.cron, row.timezone, row.interval_seconds) != (
        cadence.cron,
        cadence.timezone,
        cadence.interval_seconds,
    )
    if not retimed and (row.task, row.payload, row.enabled) == (
        spec.task,
        spec.stored_payload(),
        True,
    ):
        return
    row.task = spec.task
    row.payload = spec.stored_payload()
    row.enabled = True
    row.updated_at = now
    if retimed:
        row.cron, row.timezone, row.interval_seconds = (
            cadence.cron,
            cadence.timezone,
            cadence.interval_seconds,
        )
        row.next_run_at = cadence.first_slot(now)


def _clip(error: str | None) -> str | None:
    return None if error is None else error[:1000]
