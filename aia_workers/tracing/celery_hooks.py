"""Spans around Celery tasks: a consumer span per run, the traceparent on every message sent.

The run's parent is the span named by the ``traceparent`` header of its
message: the API's enqueue (written into the message it builds itself), or
whichever run or process sent it through Celery (``before_task_publish``
adds the header then: canvas steps, retries, beat's submits). The run's span
is current while its body runs and while its outcome is published, so the
end event carries it on to the webhooks (``observability``).

Connected by the worker's app; handlers do nothing while tracing is off.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Task, signals
from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from aia_workers.settings import get_settings
from aia_workers.tracing.context import TRACEPARENT, context_of, current_traceparent
from aia_workers.tracing.runtime import configure_tracing, flush, get_tracer

__all__ = ["connect_tracing", "trace_tasks", "worker_service_name"]

# Runs in progress in this process, by task id: (span, the token that made it current).
_running: dict[str, tuple[Span, object]] = {}
_lock = threading.Lock()


def worker_service_name(queues: Any) -> str:
    """``aia-worker-<queue>`` (queues joined by ``-``) for a worker consuming ``queues``."""
    if isinstance(queues, str):
        queues = [q for q in queues.split(",") if q]
    names = sorted(str(q) for q in queues or ())
    return f"aia-worker-{'-'.join(names) if names else 'all'}"


def _on_worker_init(options: dict[str, Any] | None = None, **_: Any) -> None:
    # Before the pool forks: the SDK restarts its export thread in each child.
    _start(worker_service_name((options or {}).get("queues")))


def _on_beat_init(**_: Any) -> None:
    _start("aia-beat")


def _start(service: str) -> None:
    if configure_tracing(get_settings(), service) is not None:
        trace_tasks()


def trace_tasks() -> None:
    """Trace this process's task runs and messages with its tracer (``runtime``).

    Celery's signals keep one connection per receiver, so a second call changes nothing.
    """
    signals.task_prerun.connect(_on_prerun)
    signals.task_failure.connect(_on_failure)
    signals.task_postrun.connect(_on_postrun)
    signals.before_task_publish.connect(_on_publish)
    signals.worker_process_shutdown.connect(_on_shutdown)
    signals.worker_shutdown.connect(_on_shutdown)


def _on_prerun(
    task_id: str | None = None,
    task: Task | None = None,
    kwargs: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    tracer = get_tracer()
    if tracer is None or task is None or not task_id:
        return
    request = task.request
    queue = (request.delivery_info or {}).get("routing_key") or ""
    attributes: dict[str, Any] = {
        "messaging.system": "celery",
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
        "messaging.message.id": task_id,
        "aia.task.type": task.name,
        "aia.task.retries": request.retries or 0,
    }
    tenant = (kwargs or {}).get("tenant")
    if isinstance(tenant, str):
        attributes["aia.tenant"] = tenant
    span = tracer.start_span(
        f"run {task.name}",
        context=context_of(getattr(request, TRACEPARENT, None)),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    )
    token = context.attach(trace.set_span_in_context(span))
    with _lock:
        _running[task_id] = (span, token)


def _on_failure(
    task_id: str | None = None, exception: BaseException | None = None, **_: Any
) -> None:
    with _lock:
        running = _running.get(task_id or "")
    if running is None or exception is None:
        return
    span = running[0]
    span.record_exception(exception)
    span.set_status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}")


def _on_postrun(task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    with _lock:
        running = _running.pop(task_id or "", None)
    if running is None:
        return
    span, token = running
    if state:
        span.set_attribute("aia.task.state", state)
    context.detach(token)  # type: ignore[arg-type]
    span.end()


def _on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None or headers.get(TRACEPARENT):
        return
    value = current_traceparent()
    if value is not None:
        headers[TRACEPARENT] = value


def _on_shutdown(**_: Any) -> None:
    flush()


def connect_tracing() -> None:
    """Start tracing in worker and beat processes when Settings name an endpoint."""
    signals.celeryd_init.connect(_on_worker_init)
    signals.beat_init.connect(_on_beat_init)
