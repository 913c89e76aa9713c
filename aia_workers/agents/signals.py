"""AIA's own signals, as one tenant's monitoring agent reads them: cheap reads, each once per run.

Queue signals (depth, the oldest waiting message's age) are the deployment's,
the same for every tenant, as ``/status`` shows them; the others are the
tenant's own: the failure rate of its tasks (task history in the database),
its models' latest drift verdicts (the Redis hash the drift checks keep) and
its webhook messages that gave up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.backbone.backlog import broker_depths, oldest_waits
from aia_workers.backbone.history import TaskRepository
from aia_workers.backbone.keys import DRIFT_LATEST_KEY
from aia_workers.backbone.states import Queue, Status
from aia_workers.drift.latest import read_latest
from aia_workers.settings import Settings
from aia_workers.webhooks.store import WebhookRepository

__all__ = ["Reading", "Signals"]

_QUEUES = tuple(q.value for q in Queue)
# Drifted models named in a reading's detail; the count is whole.
_NAMED_MODELS = 20
_AMQP_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Reading:
    """One signal's value now; ``value`` None when there is nothing to judge by.

    ``samples`` is how many observations a rate stands on; ``detail`` what a
    person looking at an alert would want next (counts, names, why no value).
    """

    value: float | None
    samples: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


class Signals:
    """Reads the signals for ``tenant``; a signal asked for twice in one instance is read once."""

    def __init__(
        self,
        *,
        tenant: str,
        settings: Settings,
        sessions: sessionmaker[Session],
        client: redis.Redis,
        now: datetime | None = None,
    ) -> None:
        self._tenant = tenant
        self._settings = settings
        self._sessions = sessions
        self._redis = client
        self._now = now or datetime.now(UTC)
        self._depths: dict[str, int] | Reading | None = None
        self._waits: dict[str, float] | Reading | None = None
        self._cache: dict[tuple[Any, ...], Reading] = {}

    @property
    def now(self) -> datetime:
        """The instant every reading is taken at."""
        return self._now

    # -- the deployment's queues ---------------------------------------------

    def queue_depth(self, queue: str) -> Reading:
        """Messages waiting on ``queue`` in the broker (all priorities)."""
        if self._depths is None:
            self._depths = self._read_depths()
        if isinstance(self._depths, Reading):
            return self._depths
        return Reading(float(self._depths.get(queue, 0)))

    def oldest_age_seconds(self, queue: str) -> Reading:
        """How long the oldest task waiting on ``queue`` has waited (0 when none waits)."""
        if self._waits is None:
            self._waits = self._read_waits()
        if isinstance(self._waits, Reading):
            return self._waits
        return Reading(round(self._waits.get(queue, 0.0), 3))

    def _read_depths(self) -> dict[str, int] | Reading:
        return broker_depths(self._settings, self._redis, _QUEUES, timeout=_AMQP_TIMEOUT_SECONDS)

    def _read_waits(self) -> dict[str, float] | Reading:
        if not self._settings.broker_is_redis:
            # The pending index is written by the same Lua call that pushes onto a
            # Redis broker; with another broker there is nothing to read it from.
            return Reading(None, detail={"reason": "message ages need a Redis broker"})
        return oldest_waits(self._redis, _QUEUES, self._now.timestamp())

    # -- the tenant's own ------------------------------------------------------

    def failure_rate(self, window_seconds: float, task_type: str | None = None) -> Reading:
        """The share of the tenant's tasks (of ``task_type``) that ended in the window and failed.

        Cancelled tasks are left out: a person stopped them, they did not fail.
        ``samples`` is the number of tasks that succeeded or failed.
        """
        key = ("failure_rate", window_seconds, task_type)
        if key not in self._cache:
            since = self._now - timedelta(seconds=window_seconds)
            with self._sessions() as session:
                counts = TaskRepository(session, self._tenant).outcomes(since, task_type=task_type)
            failed = counts.get(Status.FAILED.value, 0)
            succeeded = counts.get(Status.SUCCEEDED.value, 0)
            total = failed + succeeded
            detail = {"failed": failed, "succeeded": succeeded, "since": since.isoformat()}
            value = round(failed / total, 6) if total else None
            self._cache[key] = Reading(value, samples=total, detail=detail)
        return self._cache[key]

    def drifted_models(self) -> Reading:
        """How many of the tenant's models were found drifted by their latest drift check."""
        key = ("drifted_models",)
        if key not in self._cache:
            verdicts = [
                v
                for v in read_latest(self._redis.hgetall(DRIFT_LATEST_KEY))
                if v.tenant == self._tenant
            ]
            drifted = sorted(v.model for v in verdicts if v.drifted)
            detail = {
                "models": drifted[:_NAMED_MODELS],
                "checked": len(verdicts),
            }
            self._cache[key] = Reading(float(len(drifted)), samples=len(verdicts), detail=detail)
        return self._cache[key]

    def webhook_dead_letters(self, window_seconds: float | None = None) -> Reading:
        """The tenant's webhook messages that gave up (only those in the window, if given)."""
        key = ("webhook_dead_letters", window_seconds)
        if key not in self._cache:
            since = (
                None if window_seconds is None else self._now - timedelta(seconds=window_seconds)
            )
            with self._sessions() as session:
                count = WebhookRepository(session, self._tenant).dead_letters(since=since)
            detail = {"since": since.isoformat()} if since else {}
            self._cache[key] = Reading(float(count), detail=detail)
        return self._cache[key]
