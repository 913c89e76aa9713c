"""A bare Celery app with Celery's own defaults and one no-op task, for worker_throughput.py.

Only the broker and the result backend are set: Celery's default queue
(``celery``), early acks, no task events, prefetch multiplier 4, and the
task's result stored in the backend, as a task declared with no options does.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/15 celery -A celery_defaults_app worker
"""

from __future__ import annotations

from bare_settings import bench_redis_url
from celery import Celery

__all__ = ["app", "noop"]

_url = bench_redis_url()

app = Celery("celery_defaults_app", broker=_url, backend=_url)


@app.task(name="bench.noop")
def noop() -> None:
    """Does nothing."""
