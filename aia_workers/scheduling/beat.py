"""Celery beat's scheduler for AIA: schedules read from the database, each slot fired once.

``celery beat -S aia_workers.scheduling.beat:DatabaseScheduler`` (what ``aia
beat`` runs) polls the schedules table every ``AIA_BEAT_POLL_SECONDS``; the
work of a pass is ``ScheduleRunner``'s, this module only plugs it into beat.

Why not an existing scheduler:
- django-celery-beat needs Django and its ORM, and every beat running sends
  every due task: running two (as every rolling deploy does) sends twice.
- celery-sqlalchemy-scheduler and its forks keep their own tables outside our
  migrations, with no tenant or creator, notice changes only through a
  "changed" marker row, and also fire once per running beat; the original is
  marked "no new features, just fix bugs".
- celery-redbeat keeps schedules in Redis, which AIA may run without
  persistence (so schedules would vanish with a restart), and stays correct
  by a lock that lets one beat run at a time: a second beat waits for the
  lock (up to its timeout after a crash) instead of sharing the work.
AIA's schedules belong to tenants, are made over the API by a known
principal, and live in PostgreSQL beside the rest; any number of beats may
run, each slot claimed by one compare-and-set UPDATE (``store.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery
from celery.beat import Scheduler
from pydantic import ValidationError
from sqlalchemy import make_url

from aia_workers.backbone.submission import BrokerRefusedError, TenantBusyError, submit_task
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.errors import UnknownTaskTypeError
from aia_workers.scheduling.contracts import SystemSchedule
from aia_workers.scheduling.runner import (
    CannotRunError,
    Launched,
    RetryLaterError,
    ScheduleRunner,
)
from aia_workers.scheduling.store import ScheduleStore
from aia_workers.settings import Settings, get_settings

__all__ = ["CeleryLauncher", "DatabaseScheduler", "declared_system_schedules"]

log = logging.getLogger(__name__)


def declared_system_schedules(settings: Settings) -> list[SystemSchedule]:
    """``AIA_SYSTEM_SCHEDULES`` when set, else the list in ``schedules/system.py``."""
    if settings.system_schedules is not None:
        return list(settings.system_schedules)
    from schedules.system import SYSTEM_SCHEDULES

    return list(SYSTEM_SCHEDULES)


class CeleryLauncher:
    """Starts scheduled runs: tenants' as recorded AIA tasks, system ones as plain Celery tasks."""

    def __init__(self, client: redis.Redis, app: Celery, settings: Settings) -> None:
        self._client = client
        self._app = app
        self._settings = settings

    def submit(
        self, *, tenant: str, type_name: str, payload: Mapping[str, Any], idempotency: str
    ) -> Launched:
        try:
            submission = submit_task(
                self._client,
                self._app,
                self._settings,
                tenant=tenant,
                type_name=type_name,
                payload=payload,
                idempotency=idempotency,
            )
        except (UnknownTaskTypeError, ValidationError) as exc:
            raise CannotRunError(f"{type_name}: {exc}") from exc
        except TenantBusyError as exc:
            raise RetryLaterError(str(exc)) from exc
        except BrokerRefusedError as exc:
            # Recorded and marked failed: the tenant sees that run's failure.
            return Launched(exc.task_id, str(exc))
        except redis.RedisError as exc:
            raise RetryLaterError(f"Redis: {exc}") from exc
        return Launched(submission.task_id)

    def send(
        self,
        *,
        task: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        queue: str | None,
        task_id: str,
    ) -> Launched:
        options: dict[str, Any] = {"task_id": task_id, "retry": False}
        if queue:
            options["queue"] = queue
        try:
            self._app.send_task(task, args=list(args), kwargs=dict(kwargs), **options)
        except Exception as exc:
            raise RetryLaterError(f"the broker did not take {task}: {exc}") from exc
        return Launched(task_id)


class DatabaseScheduler(Scheduler):  # type: ignore[misc]
    """A beat scheduler over the schedules table; keeps nothing on disk."""

    def __init__(
        self, app: Celery, *args: Any, settings: Settings | None = None, **kwargs: Any
    ) -> None:
        self._settings = settings or get_settings()
        self._runner: ScheduleRunner | None = None
        self._store: ScheduleStore | None = None
        self._system_synced = False
        self._failing: str | None = None
        super().__init__(app, *args, **kwargs)

    def setup_schedule(self) -> None:
        settings = self._settings
        self._engine = make_engine(settings)
        self._client = redis.Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
        self._store = ScheduleStore(make_sessionmaker(self._engine))
        self._runner = ScheduleRunner(
            self._store,
            CeleryLauncher(self._client, self.app, settings),
            lease_seconds=settings.beat_lease_seconds,
            retry_seconds=settings.beat_retry_seconds,
        )

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One pass, and the seconds until the next; an outage is logged and waited out."""
        assert self._store is not None
        assert self._runner is not None
        try:
            if not self._system_synced:
                self._store.sync_system(
                    declared_system_schedules(self._settings), datetime.now(UTC)
                )
                self._system_synced = True
            self._runner.run_due()
        except Exception as exc:
            # The database (or something else) is down: say so once, not every pass.
            message = f"{type(exc).__name__}: {exc}"
            if message != self._failing:
                log.warning("beat: cannot read or claim schedules, retrying: %s", message)
            self._failing = message
            return self._settings.beat_retry_seconds
        if self._failing is not None:
            log.info("beat: schedules reachable again")
            self._failing = None
        return self._settings.beat_poll_seconds

    def close(self) -> None:
        super().close()
        # A lazy scheduler (beat's banner makes one) never set up.
        if self._store is not None:
            self._engine.dispose()
            self._client.close()

    @property
    def info(self) -> str:
        database = make_url(self._settings.database_url).render_as_string()
        return f"    . db -> {database}\n    . poll -> every {self._settings.beat_poll_seconds}s"
