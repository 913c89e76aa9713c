"""Logging for the processes AIA starts itself: the recorder, the exporter and the API."""

from __future__ import annotations

import logging
import sys
from typing import Any

from aia_workers.logs.context import set_process
from aia_workers.logs.json_lines import JsonFormatter
from aia_workers.settings import Settings

__all__ = ["configure_logging", "uvicorn_log_config"]

_TEXT = "%(asctime)s %(levelname)s %(message)s"


def configure_logging(settings: Settings, process: str, level: str) -> None:
    """Log at ``level`` to standard error, one JSON object or one text line per record."""
    set_process(process)
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if settings.log_format == "json" else logging.Formatter(_TEXT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def uvicorn_log_config(settings: Settings, level: str) -> dict[str, Any]:
    """uvicorn's ``log_config`` for the API: uvicorn's own in text.

    In JSON, uvicorn's loggers and the application's (through the root) all
    write through one handler, so every line of the process is one object.
    """
    set_process("aia-api")
    if settings.log_format != "json":
        from uvicorn.config import LOGGING_CONFIG

        return LOGGING_CONFIG
    formatter = {"()": "aia_workers.logs.json_lines.JsonFormatter", "process": "aia-api"}
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    server = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": formatter},
        "handlers": {"default": handler},
        "loggers": {"uvicorn": server, "uvicorn.access": server},
        "root": {"handlers": ["default"], "level": level.upper()},
    }
