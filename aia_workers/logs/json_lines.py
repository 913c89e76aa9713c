"""One JSON object per log line, for a log pipeline to parse rather than guess at."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import trace

from aia_workers.logs.context import current_task, process, set_process

__all__ = ["JsonFormatter"]


class JsonFormatter(logging.Formatter):
    """``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``process`` and
    ``pid``, the ``queue``, ``task_id`` and ``tenant`` of the task it was logged
    for (null outside one), ``trace_id`` and ``span_id`` inside a recorded span,
    and ``exception`` with its traceback when there is one."""

    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        if process is not None:
            set_process(process)

    def format(self, record: logging.LogRecord) -> str:
        name, process_queue = process()
        task = current_task()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": name,
            "pid": record.process,
            "queue": task.queue or process_queue,
            "task_id": task.task_id,
            "tenant": task.tenant,
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = f"{span.trace_id:032x}"
            line["span_id"] = f"{span.span_id:016x}"
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()
