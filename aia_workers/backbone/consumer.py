"""The worker's consumer: Celery's, sending its monitoring events in batches.

Celery buffers a worker's task events (received, started, succeeded, ...) and
publishes the buffer as one ``task.multi`` message, but it flushes on the
event loop's next turn, so a busy worker still sends a message every task or
two. In ``bench/worker_throughput.py`` that publishing (a PUBLISH and a new
Redis client object each) took about a third of the worker parent's CPU, and
the parent's one thread is what a prefork worker's throughput waits on.

Here a buffered event waits up to ``EVENT_LINGER_SECONDS`` for others; the
dispatcher still sends at once when its buffer holds ``buffer_limit`` (24)
events. Flower and ``celery events`` read ``task.multi`` as they read single
events, so they see every event, at most that much later.

Only with Redis as the broker, where it was measured; on RabbitMQ the events
go out as Celery sends them.
"""

from __future__ import annotations

import time
from typing import Any

from celery.worker.consumer import Consumer

from aia_workers.settings import get_settings

__all__ = ["EVENT_LINGER_SECONDS", "AiaConsumer"]

EVENT_LINGER_SECONDS = 0.1
# A flush that has not run this long after it was due was lost with the event
# loop's timers (a reconnect); the next buffered event schedules another.
_STALE_SECONDS = 1.0


class AiaConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, flushing buffered task events once per linger time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # When the scheduled flush of buffered events is due (monotonic), None when none is.
        self._events_flush_due: float | None = None
        self._lingers = get_settings().broker_is_redis

    def on_send_event_buffered(self) -> None:
        hub = self.hub
        if hub is None:
            return
        if not self._lingers:
            super().on_send_event_buffered()
            return
        due = self._events_flush_due
        now = time.monotonic()
        if due is not None and now < due + _STALE_SECONDS:
            return
        self._events_flush_due = now + EVENT_LINGER_SECONDS
        # Pool threads send events too, and the hub's timer is not thread-safe:
        # call_soon (which is) moves the scheduling onto the loop's thread.
        hub.call_soon(self._schedule_events_flush)

    def _schedule_events_flush(self) -> None:
        if self.hub is not None:
            self.hub.call_later(EVENT_LINGER_SECONDS, self._flush_lingering_events)

    def _flush_lingering_events(self) -> None:
        self._events_flush_due = None
        self._flush_events()

    def shutdown(self) -> None:
        # Events still lingering would be dropped with the dispatcher.
        self._flush_events()
        super().shutdown()
