"""A bare Celery app with AIA's worker settings and one no-op task, for worker_throughput.py.

It copies what ``celeryconfig`` and ``aia_task`` set for every AIA worker and
task (JSON only, late acks, requeue on a lost worker, prefetch 4, task events
on, no STARTED state and no result in the backend) but none of AIA's signal
handlers or task events.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/15 celery -A bare_celery_app worker -Q default ...
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

__all__ = ["app", "noop"]

_url = os.environ.get("BENCH_REDIS_URL") or os.environ.get(
    "AIA_REDIS_URL", "redis://127.0.0.1:6379/15"
)

app = Celery("bare_celery_app")
app.conf.update(
    broker_url=_url,
    result_backend=_url,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 21_600},
    result_backend_transport_options={"socket_timeout": 5, "socket_connect_timeout": 5},
    result_expires=7 * 86_400,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    task_default_queue="default",
    task_queues=[
        Queue(
            "default",
            routing_key="default",
            queue_arguments={"x-max-priority": 10, "x-consumer-timeout": 21_600_000},
        )
    ],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_cancel_long_running_tasks_on_connection_loss=True,
    task_time_limit=3600,
    task_soft_time_limit=3540,
    worker_send_task_events=True,
    task_send_sent_event=True,
    task_track_started=False,
    worker_prefetch_multiplier=4,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def noop() -> None:
    """Does nothing."""
