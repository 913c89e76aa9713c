"""JSON lines from Celery's own logging, in worker and beat processes.

Celery keeps its logging set up as usual (levels, handlers, the redirect of
standard output); after it has, the handlers of its root and task loggers
get the JSON formatter. Each task's run binds its id, tenant and queue, so
every line logged while it runs says which task it came from, Celery's own
"succeeded" line included.
"""

from __future__ import annotations

import contextlib
import logging
from contextvars import Token
from typing import Any

from celery import Task, signals

from aia_workers.logs.context import TaskScope, bind_task, set_process, unbind_task
from aia_workers.logs.json_lines import JsonFormatter
from aia_workers.settings import get_settings

__all__ = ["connect_logging"]

_bound: dict[str, Token[TaskScope]] = {}


def _json() -> bool:
    return get_settings().log_format == "json"


def _on_worker_init(options: dict[str, Any] | None = None, **_: Any) -> None:
    from aia_workers.tracing.celery_hooks import worker_service_name

    queues = (options or {}).get("queues")
    if isinstance(queues, str):
        queues = [q for q in queues.split(",") if q]
    queue = ",".join(sorted(queues)) if queues else None
    set_process(worker_service_name(queues), queue)


def _on_beat_init(**_: Any) -> None:
    set_process("aia-beat")


def _on_logger_setup(logger: logging.Logger | None = None, **_: Any) -> None:
    if logger is None or not _json():
        return
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())


def _on_prerun(
    task_id: str | None = None,
    task: Task | None = None,
    kwargs: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    if task is None or not task_id:
        return
    queue = (task.request.delivery_info or {}).get("routing_key")
    tenant = (kwargs or {}).get("tenant")
    _bound[task_id] = bind_task(task_id, tenant if isinstance(tenant, str) else None, queue)


def _on_postrun(task_id: str | None = None, **_: Any) -> None:
    token = _bound.pop(task_id or "", None)
    if token is not None:
        # ValueError: reset from another context (a pool that ran postrun
        # elsewhere); the run's own context ends with it anyway.
        with contextlib.suppress(ValueError):
            unbind_task(token)


def connect_logging() -> None:
    """Format Celery's log lines as Settings say, and tag each task's lines."""
    signals.celeryd_init.connect(_on_worker_init)
    signals.beat_init.connect(_on_beat_init)
    signals.after_setup_logger.connect(_on_logger_setup)
    signals.after_setup_task_logger.connect(_on_logger_setup)
    # Always: Settings are not read at import, and a binding costs a context variable.
    signals.task_prerun.connect(_on_prerun)
    signals.task_postrun.connect(_on_postrun)
