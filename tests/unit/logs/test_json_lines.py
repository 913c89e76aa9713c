"""JSON log lines: one object per record, naming the process, the task and the trace."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aia_workers.logs.context import bind_task, process, set_process, unbind_task
from aia_workers.logs.json_lines import JsonFormatter
from aia_workers.logs.setup import configure_logging, uvicorn_log_config
from aia_workers.settings import Settings
from tests.tracing_memory import Spans

_Lines = tuple[logging.Logger, io.StringIO]


@pytest.fixture
def lines() -> Iterator[_Lines]:
    before = process()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(process="aia-worker-ml"))
    logger = logging.getLogger("tests.json_lines")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)
    set_process(*before)


def _read(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_outside_any_task_names_the_process(lines: _Lines) -> None:
    logger, out = lines
    logger.warning("disk %s%% full", 91)
    [line] = _read(out)
    assert line["message"] == "disk 91% full"
    assert (line["level"], line["logger"]) == ("WARNING", "tests.json_lines")
    assert line["process"] == "aia-worker-ml"
    assert isinstance(line["pid"], int)
    assert (line["task_id"], line["tenant"], line["queue"]) == (None, None, None)
    assert "trace_id" not in line
    assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)


def test_a_task_s_lines_name_it_its_tenant_queue_and_trace(lines: _Lines) -> None:
    logger, out = lines
    kept = Spans()
    token = bind_task("t-1", "acme", "ml")
    try:
        with kept.tracer.start_as_current_span("run") as span:
            logger.info("training")
    finally:
        unbind_task(token)
    logger.info("after")
    during, after = _read(out)
    assert (during["task_id"], during["tenant"], during["queue"]) == ("t-1", "acme", "ml")
    ctx = span.get_span_context()
    assert during["trace_id"] == f"{ctx.trace_id:032x}"
    assert during["span_id"] == f"{ctx.span_id:016x}"
    assert after["task_id"] is None


def test_an_exception_keeps_its_traceback_on_one_line(lines: _Lines) -> None:
    logger, out = lines
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logger.exception("failed")
    text = out.getvalue()
    assert text.count("\n") == 1
    [line] = _read(out)
    assert "ValueError: bad\nvalue" in line["exception"]


def test_plain_processes_and_uvicorn_follow_the_format(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, process())
    try:
        configure_logging(Settings(data_home=tmp_path, log_format="json"), "aia-recorder", "info")
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert root.level == logging.INFO
        configure_logging(Settings(data_home=tmp_path), "aia-recorder", "warning")
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:], level, before = saved
        root.setLevel(level)
        set_process(*before)
    config = uvicorn_log_config(Settings(data_home=tmp_path, log_format="json"), "info")
    assert config["formatters"]["json"]["()"] == "aia_workers.logs.json_lines.JsonFormatter"
    assert set(config["loggers"]) == {"uvicorn", "uvicorn.access"}
    assert "json" not in str(uvicorn_log_config(Settings(data_home=tmp_path), "info"))
    set_process(*saved[2])
