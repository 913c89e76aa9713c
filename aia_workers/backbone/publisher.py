"""The worker side's handle on task events: one blocking Redis client per process.

Lifecycle transitions (started, succeeded, failed, ...) are sent at once and
their answer awaited: a start must learn whether the task was cancelled, and
an outcome must be recorded before Celery acknowledges the message. Progress
needs no answer, so it is buffered for a few milliseconds: a background
thread sends it, or the task's next transition carries it in the same
pipeline, ahead of itself. One lock orders all sends, so a task's progress
never lands after its outcome.

A start carries the poison policy: the script that records it quarantines,
in the same step, a task whose worker was lost too often, so that the task
cannot start again on any worker. It carries the fair share too: the same
step takes one of the tenant's slots on the queue, or finds none free and
leaves the task to be put back (``aia_workers.backbone.fairness``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError

from aia_workers.backbone.events import (
    PoisonPolicy,
    StreamLimits,
    TransitionOutcome,
    transition_args,
)
from aia_workers.backbone.fairness import FairShare
from aia_workers.backbone.scripts import TRANSITION_LUA
from aia_workers.backbone.states import TERMINAL, Event, Status
from aia_workers.settings import Settings, get_settings

__all__ = ["EventPublisher", "get_publisher", "reset_publisher"]

log = logging.getLogger(__name__)

_Call = tuple[list[str], list[str | int | float]]
# Statuses after which this process runs the task no more (a retry may start elsewhere).
_LEAVES = TERMINAL | {Status.RETRYING}
_SHA = hashlib.sha1(TRANSITION_LUA.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


class EventPublisher:
    """Moves tasks between states and publishes the events, from worker code."""

    def __init__(
        self,
        client: redis.Redis,
        limits: StreamLimits,
        *,
        poison: PoisonPolicy | None = None,
        fair: FairShare | None = None,
        progress_linger_seconds: float = 0.02,
    ) -> None:
        self.client = client
        self._limits = limits
        self._poison = poison
        self.fair = fair
        self._linger = progress_linger_seconds
        self._send_lock = threading.Lock()
        self._pending: list[_Call] = []
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        # The record's (tenant, type, queue) of each task this process started,
        # so that its later transitions name the tenant's in-flight count and
        # the queue's pending index in KEYS: outcomes come from signal
        # handlers that know only the task id.
        self._records: dict[str, tuple[str, str, str]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> EventPublisher:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
            health_check_interval=30,
        )
        return cls(
            client,
            StreamLimits.from_settings(settings),
            poison=PoisonPolicy.from_settings(settings),
            fair=FairShare.from_settings(settings),
        )

    def transition(
        self,
        task_id: str,
        event: Event,
        *,
        data: Mapping[str, Any] | None = None,
        fields: Mapping[str, str] | None = None,
        fallback: tuple[str, str, str] = ("", "", ""),
    ) -> TransitionOutcome:
        """Apply ``event`` to the task now; a terminal task is left as it is.

        A start may come back ``quarantined`` (see PoisonPolicy): the task is
        failed and filed as a dead letter, and its body must not run. It may
        come back ``deferred`` (see FairShare): its tenant has no free slot on
        the queue, and the task must be put back to wait, not run.
        """
        if event.status in _LEAVES:
            fallback = self._records.pop(task_id, fallback)
        elif event is not Event.STARTED:
            fallback = self._records.get(task_id, fallback)
        call = self._call(task_id, event, data, fields, fallback)
        with self._send_lock:
            pending, self._pending = self._pending, []
            replies = self._execute([*pending, call])
        outcome = TransitionOutcome.from_reply(replies[-1])
        if event is Event.STARTED and fallback[0] and outcome.outcome == "ok":
            self._records[task_id] = fallback
        return outcome

    def progress(
        self, task_id: str, progress: Mapping[str, Any], fields: Mapping[str, str]
    ) -> None:
        """Queue a progress event; it is sent within the linger time, in order."""
        call = self._call(task_id, Event.PROGRESS, progress, fields, ("", "", ""))
        with self._send_lock:
            self._pending.append(call)
        self._ensure_flusher()
        self._wake.set()

    def flush(self) -> None:
        """Send queued progress events now."""
        with self._send_lock:
            pending, self._pending = self._pending, []
            if pending:
                self._execute(pending)

    def _call(
        self,
        task_id: str,
        event: Event,
        data: Mapping[str, Any] | None,
        fields: Mapping[str, str] | None,
        fallback: tuple[str, str, str],
    ) -> _Call:
        return transition_args(
            task_id=task_id,
            event=event,
            now=time.time(),
            limits=self._limits,
            data=data,
            fields=fields,
            fallback=fallback,
            poison=self._poison,
            fair=self.fair,
        )

    def _execute(self, calls: Sequence[_Call]) -> list[Any]:
        replies = self._pipeline(calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # Redis restarted or dropped its scripts; those calls did nothing, so rerun them.
            self.client.script_load(TRANSITION_LUA)
            for i, reply in zip(missing, self._pipeline([calls[i] for i in missing]), strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _pipeline(self, calls: Sequence[_Call]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(_SHA, len(keys), *keys, *args)
        return list(pipe.execute(raise_on_error=False))

    def _ensure_flusher(self) -> None:
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(
                target=self._flush_forever, name="aia-progress", daemon=True
            )
            self._flusher.start()

    def _flush_forever(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            # Let a burst of progress gather; the task's next transition may take it sooner.
            time.sleep(self._linger)
            try:
                self.flush()
            except redis.RedisError:
                log.warning("could not publish progress", exc_info=True)


_state: tuple[int, EventPublisher] | None = None


def get_publisher() -> EventPublisher:
    """This process's publisher, made on first use after start or fork."""
    global _state
    pid = os.getpid()
    if _state is None or _state[0] != pid:
        # A prefork child must not share its parent's sockets or threads.
        _state = (pid, EventPublisher.from_settings(get_settings()))
    return _state[1]


def reset_publisher() -> None:
    """Forget this process's publisher, e.g. in a freshly forked child."""
    global _state
    _state = None
