"""Keeps the messages a live worker holds invisible to the Redis transport's restorer.

With Redis as broker, a message a worker has taken but not acknowledged waits
in an index scored by the time it was taken; any worker puts it back on its
queue once it is older than the visibility timeout. A long timeout makes a
task whose worker died wait that long; a short one hands a long task to a
second worker while the first still runs it. This consumer step removes the
trade-off: while the worker is alive it re-scores every message it holds a
few times per timeout, so only the messages of a worker that is gone (or cut
off from Redis for longer than the timeout) age past it, and they come back
within about one timeout.

The same thread sweeps the worker's queues for tasks whose message a dead
worker took without recording it (``aia_workers.backbone.rescue``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery import bootsteps

from aia_workers.backbone.rescue import Rescuer
from aia_workers.settings import get_settings

__all__ = ["VisibilityKeeper", "refresh_interval"]

log = logging.getLogger(__name__)


def refresh_interval(visibility_timeout_seconds: float) -> float:
    """How often held messages are re-scored: four times per timeout, within [0.5, 60] s."""
    return min(60.0, max(0.5, visibility_timeout_seconds / 4))


class VisibilityKeeper(bootsteps.StartStopStep):  # type: ignore[misc]
    """A consumer step running one thread that re-scores the messages this worker holds."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self._consumer = c
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None
        self._rescuer: Rescuer | None = None

    def start(self, c: Any) -> None:
        self._consumer = c
        if not get_settings().broker_is_redis or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="aia-visibility", daemon=True)
        self._thread.start()

    def shutdown(self, c: Any) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            channel = self._channel()
            timeout = float(getattr(channel, "visibility_timeout", 0) or 0)
            if channel is not None and timeout:
                try:
                    self.refresh(channel)
                    self.rescue(channel, timeout)
                except redis.RedisError as exc:
                    # The consumer sees the same outage and reconnects; try again next time.
                    log.debug("could not refresh held messages: %s", exc)
                except Exception:
                    # kombu's channel may be half torn down while it reconnects;
                    # a dead keeper would let long tasks go to a second worker.
                    log.warning("could not refresh held messages", exc_info=True)
            self._stop.wait(refresh_interval(timeout or 60.0))

    def _channel(self) -> Any:
        task_consumer = getattr(self._consumer, "task_consumer", None)
        return getattr(task_consumer, "channel", None)

    def refresh(self, channel: Any) -> int:
        """Re-score the messages ``channel`` holds; the number still held."""
        qos = getattr(channel, "_qos", None)
        if qos is None or getattr(channel, "closed", False):
            return 0
        tags = _snapshot(qos._delivered)
        if not tags:
            return 0
        key = getattr(channel, "global_keyprefix", "") + channel.unacked_index_key
        now = time.time()
        # XX: a message acknowledged meanwhile has left the index and must not come back.
        self._redis().zadd(key, dict.fromkeys(tags, now), xx=True)
        return len(tags)

    def rescue(self, channel: Any, visibility_timeout: float) -> list[str]:
        """Queue again the lost tasks of the queues this worker consumes."""
        if self._rescuer is None:
            unacked = getattr(channel, "global_keyprefix", "") + channel.unacked_key
            # A message held by a worker that died is back after one timeout;
            # one lost outright is given the same time before it counts as lost.
            self._rescuer = Rescuer(
                self._redis(), grace_seconds=visibility_timeout, unacked_key=unacked
            )
        queues = sorted(getattr(self._consumer.task_consumer, "queues", None) or [], key=str)
        return self._rescuer.sweep([q.name for q in queues])

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self._consumer.app.conf.broker_url, socket_timeout=5, socket_connect_timeout=5
            )
        return self._client


def _snapshot(delivered: Any) -> list[Any]:
    # The consumer's event loop adds and removes tags while this thread reads them.
    for _ in range(5):
        try:
            return list(delivered)
        except RuntimeError:
            continue
    return []
