"""A bare Celery app whose one task PUBLISHes on a channel, the reference of e2e_latency.py.

Its Celery settings are AIA's (JSON only, late acks, requeue on a lost worker,
prefetch 4, task and sent events on, no STARTED state, no result stored), so
the reference pays what any Celery deployment with those guarantees pays, and
none of AIA's work: no record, no events of its own, no signal handlers.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/15 celery -A bare_pubsub_app worker -Q bare_e2e ...
"""

from __future__ import annotations

from typing import Any

import redis
from bare_settings import aia_celery_settings, bench_redis_url
from celery import Celery
from celery.signals import worker_process_init

__all__ = ["QUEUE", "TASK", "app", "publish"]

QUEUE = "bare_e2e"
TASK = "bench.publish"

_url = bench_redis_url()

app = Celery("bare_pubsub_app")
app.conf.update(aia_celery_settings(_url, QUEUE))

# One connection per prefork child, made in the child (never shared over fork).
_client: list[redis.Redis] = []


@worker_process_init.connect
def _connect(**_: Any) -> None:
    _client[:] = [redis.Redis.from_url(_url)]


@app.task(name=TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def publish(channel: str, token: str) -> None:
    """PUBLISH ``token`` on ``channel``: the client subscribed to it before sending."""
    if not _client:
        _connect()
    _client[0].publish(channel, token)
