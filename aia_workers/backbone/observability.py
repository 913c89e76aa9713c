"""Celery signal handlers: task events and the worker registry.

Every task's success, failure and revocation is published from here (its
start and retries from ``aia_workers.backbone.tasking.AiaTask``), so task bodies never
publish their own lifecycle. Handlers swallow Redis errors: a broken event
pipe must not turn a finished task into a failed one.

Importing this module connects nothing: the worker's app connects the
handlers (``connect_handlers``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import Any

import redis
from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery import Task, signals
from celery.worker import state as worker_state

from aia_workers.backbone.events import dumps
from aia_workers.backbone.keys import WORKERS_KEY
from aia_workers.backbone.publisher import get_publisher, reset_publisher
from aia_workers.backbone.scripts import TRACEPARENT_FIELD
from aia_workers.backbone.states import Event
from aia_workers.errors import TaskFailure
from aia_workers.tracing.context import current_traceparent

__all__ = ["connect_handlers", "describe_failure"]

log = logging.getLogger(__name__)

_registration: dict[str, Any] = {}


def describe_failure(exc: BaseException, task: Task | None = None) -> str:
    """A message a person can act on, for a task that raised ``exc``."""
    if isinstance(exc, TimeLimitExceeded):
        limit = getattr(task, "time_limit", None)
        return f"the task ran past its time limit of {limit} s and was stopped"
    if isinstance(exc, SoftTimeLimitExceeded):
        limit = getattr(task, "soft_time_limit", None)
        return f"the task ran past its soft time limit of {limit} s"
    if isinstance(exc, TaskFailure):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _publish(
    task_id: str | None,
    event: Event,
    *,
    data: dict[str, Any] | None = None,
    fields: dict[str, str] | None = None,
) -> None:
    if not task_id:
        return
    traced = current_traceparent()
    if traced is not None:
        # The run's span, current here while tracing is on: the webhooks this
        # end causes continue its trace (aia_workers.webhooks.task_events).
        fields = {**(fields or {}), TRACEPARENT_FIELD: traced}
    try:
        get_publisher().transition(task_id, event, data=data, fields=fields)
    except redis.RedisError:
        log.exception("could not publish %s for task %s", event.value, task_id)


def _on_success(sender: Task | None = None, result: Any = None, **_: Any) -> None:
    task_id = sender.request.id if sender is not None else None
    _publish(task_id, Event.SUCCEEDED, data={"result": result}, fields={"result": dumps(result)})


def _on_failure(
    sender: Task | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    exc = exception if exception is not None else RuntimeError("unknown error")
    message = describe_failure(exc, sender)
    error = {"type": type(exc).__name__, "message": message}
    _publish(task_id, Event.FAILED, data={"error": error}, fields={"error": dumps(error)})


def _on_revoked(
    request: Any = None, terminated: bool = False, expired: bool = False, **_: Any
) -> None:
    task_id = getattr(request, "id", None)
    if not expired and task_id not in worker_state.revoked:
        # Celery also terminates running late-ack tasks when the broker
        # connection drops; nobody revoked those, and their messages come back.
        log.info("task %s was stopped by the worker, not revoked; it will run again", task_id)
        return
    reason = "expired" if expired else ("terminated" if terminated else "revoked")
    _publish(task_id, Event.CANCELLED, data={"reason": reason})


def _on_child_start(**_: Any) -> None:
    reset_publisher()


def _remember_queues(sender: str | None = None, instance: Any = None, **_: Any) -> None:
    queues = sorted(instance.app.amqp.queues.consume_from) if instance is not None else []
    _registration.update(hostname=sender or socket.gethostname(), queues=queues, pid=os.getpid())


def _register() -> None:
    if not _registration:
        return
    entry = dict(_registration, seen=time.time())
    try:
        get_publisher().client.hset(WORKERS_KEY, entry["hostname"], json.dumps(entry))
    except redis.RedisError:
        log.warning("could not refresh the worker registry", exc_info=True)


def _on_ready(**_: Any) -> None:
    _register()


def _on_heartbeat(**_: Any) -> None:
    _register()


def _on_shutdown(**_: Any) -> None:
    if not _registration:
        return
    try:
        get_publisher().client.hdel(WORKERS_KEY, _registration["hostname"])
    except redis.RedisError:
        log.warning("could not leave the worker registry", exc_info=True)


def connect_handlers() -> None:
    """Connect the handlers above to Celery's signals, for the process's worker app.

    Celery's signals are process-wide and keep one connection per receiver, so
    a second call changes nothing.
    """
    signals.task_success.connect(_on_success)
    signals.task_failure.connect(_on_failure)
    signals.task_revoked.connect(_on_revoked)
    signals.worker_process_init.connect(_on_child_start)
    signals.celeryd_after_setup.connect(_remember_queues)
    signals.worker_ready.connect(_on_ready)
    signals.heartbeat_sent.connect(_on_heartbeat)
    signals.worker_shutdown.connect(_on_shutdown)
