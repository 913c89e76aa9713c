"""What the bare Celery apps of the benchmarks share: their Redis URL and AIA's Celery settings.

The settings copy what ``celeryconfig`` and ``aia_task`` set for every AIA
worker and task (JSON only, late acks, requeue on a lost worker, prefetch 4,
task and sent events on, no STARTED state) and nothing of AIA's own work.
"""

from __future__ import annotations

import os
from typing import Any

from kombu import Queue

__all__ = ["aia_celery_settings", "bench_redis_url"]


def bench_redis_url() -> str:
    """The Redis database the benchmark script chose (``BENCH_REDIS_URL``)."""
    return os.environ.get("BENCH_REDIS_URL") or os.environ.get(
        "AIA_REDIS_URL", "redis://127.0.0.1:6379/15"
    )


def aia_celery_settings(url: str, queue: str) -> dict[str, Any]:
    """AIA's worker settings for an app on ``url`` whose tasks go to ``queue``."""
    return {
        "broker_url": url,
        "result_backend": url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": 21_600},
        "result_backend_transport_options": {"socket_timeout": 5, "socket_connect_timeout": 5},
        "result_expires": 7 * 86_400,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": queue,
        "task_queues": [
            Queue(
                queue,
                routing_key=queue,
                queue_arguments={"x-max-priority": 10, "x-consumer-timeout": 21_600_000},
            )
        ],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_time_limit": 3600,
        "task_soft_time_limit": 3540,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": False,
        "worker_prefetch_multiplier": 4,
        "worker_hijack_root_logger": False,
    }
