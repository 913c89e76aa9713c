"""What the long-running stream readers (``aia recorder``, ``aia exporter``) share."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

    from aia_workers.settings import Settings

__all__ = ["run_until_stopped", "stream_reader_client"]


def stream_reader_client(settings: Settings) -> redis.Redis:
    """A Redis client for a consumer whose reads block for a second at a time: its socket
    timeout is longer than that."""
    import redis

    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_timeout_seconds + 5,
        socket_connect_timeout=settings.redis_timeout_seconds,
    )


def run_until_stopped(run: Callable[[threading.Event], None], *, name: str) -> None:
    """Run ``run(stop)`` on a thread of its own until SIGINT or SIGTERM sets ``stop``.

    The loop runs on a thread of its own so that the signal handlers, which run
    on the main thread, never call stop.set() while that thread holds the
    Event's lock inside stop.wait(): that deadlocked the process.
    """
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    worker = threading.Thread(target=run, args=(stop,), name=name)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    finally:
        stop.set()
        worker.join()
