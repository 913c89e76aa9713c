"""Celery configuration for every AIA process, derived from Settings."""

from __future__ import annotations

from kombu import Queue

from aia_workers.backbone.states import Queue as AiaQueue
from aia_workers.settings import get_settings

_settings = get_settings()

broker_url = _settings.broker_url
result_backend = _settings.result_backend
broker_connection_retry_on_startup = True
if _settings.broker_is_redis:
    broker_transport_options = {
        # A message taken by a worker that died comes back after this long;
        # live workers keep theirs from aging (aia_workers/backbone/visibility.py).
        "visibility_timeout": _settings.visibility_timeout_seconds,
        # Sweep for messages abandoned by a dead worker every few seconds;
        # kombu's default throttle would make that up to 100 s.
        "unacked_restore_interval": min(10, max(1, _settings.visibility_timeout_seconds // 4)),
        "unacked_restore_throttle": 1,
        # A read that hears nothing for this long means a dead link, not a quiet
        # queue: without it a silently dropped connection blocks a worker forever.
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 10,
    }
else:
    broker_transport_options = {
        # A 202 promises the task is queued: wait for RabbitMQ to confirm each
        # message, or one sent into a connection that is about to drop is lost.
        "confirm_publish": True,
    }
result_backend_transport_options = {"socket_timeout": 5, "socket_connect_timeout": 5}
result_expires = _settings.result_expires_seconds

# JSON only: no pickle from a broker or a client.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

task_default_queue = AiaQueue.DEFAULT.value
task_queues = [
    Queue(
        q.value,
        routing_key=q.value,
        queue_arguments={
            # RabbitMQ: priorities 0-9, and unacked deliveries kept as long as
            # the longest task may hold one.
            "x-max-priority": 10,
            "x-consumer-timeout": _settings.rabbitmq_consumer_timeout_seconds * 1000,
        },
    )
    for q in AiaQueue
]
task_routes = {
    "agents.*": {"queue": AiaQueue.AGENTS.value},
    "ml.*": {"queue": AiaQueue.ML.value},
    "drift.*": {"queue": AiaQueue.DRIFT.value},
    "webhooks.*": {"queue": AiaQueue.WEBHOOKS.value},
    "diagnostics.*": {"queue": AiaQueue.DEFAULT.value},
}

# At-least-once: a task is acknowledged after it ran, and requeued if the
# process running it dies. Task bodies are written to be safe to run twice.
task_acks_late = True
task_reject_on_worker_lost = True
worker_cancel_long_running_tasks_on_connection_loss = True
# After a broker reconnect Celery lowers the prefetch count by the tasks still
# running and raises it again from each ack callback with a blocking basic.qos.
# A threads-pool worker runs those callbacks in its pool threads, so several
# threads and the consumer then read the one py-amqp socket at once, steal each
# other's replies and block for good: the worker holds its prefetched messages
# and never runs them. Prefork workers terminate their running tasks on the
# reconnect, so the reduction never applied to them anyway.
worker_enable_prefetch_count_reduction = False

# A backstop; each task type sets its own limits from the catalog.
task_time_limit = 3600
task_soft_time_limit = 3540

# Flower sees every task from sent to done, through Celery's events.
worker_send_task_events = True
task_send_sent_event = True
# Publishes those events in batches (aia_workers/backbone/consumer.py).
worker_consumer = "aia_workers.backbone.consumer:AiaConsumer"
# AIA's own record (aia_workers.backbone.events) tracks the start; writing STARTED to
# the result backend as well would cost every task a round trip for nothing.
task_track_started = False

worker_prefetch_multiplier = 4
worker_hijack_root_logger = False
# Beat reads every schedule, the system ones included, from the database
# (aia_workers/scheduling/beat.py); several beats may run at once.
beat_scheduler = "aia_workers.scheduling.beat:DatabaseScheduler"
