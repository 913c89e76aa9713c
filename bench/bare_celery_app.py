"""A bare Celery app with AIA's worker settings and one no-op task, for worker_throughput.py.

It copies what ``celeryconfig`` and ``aia_task`` set for every AIA worker and
task (JSON only, late acks, requeue on a lost worker, prefetch 4, task events
on, no STARTED state and no result in the backend) but none of AIA's signal
handlers or task events.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/15 celery -A bare_celery_app worker -Q default ...
"""

from __future__ import annotations

from bare_settings import aia_celery_settings, bench_redis_url
from celery import Celery

__all__ = ["app", "noop"]

app = Celery("bare_celery_app")
app.conf.update(aia_celery_settings(bench_redis_url(), "default"))


@app.task(name="bench.noop", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def noop() -> None:
    """Does nothing."""
