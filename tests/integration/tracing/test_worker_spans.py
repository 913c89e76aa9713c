"""A real (in-process) Celery worker's spans: a run continues its message's traceparent,
and what the run sends continues the run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from aia_workers.tracing.celery_hooks import trace_tasks
from tests.support import wait_for
from tests.tracing_memory import Spans, installed_spans

pytestmark = pytest.mark.integration

_SENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def traced_worker(redis_url: str) -> Iterator[tuple[Celery, Spans, str]]:
    """A worker, its tracer's spans, and the prefix of its task names (unique per test:
    Celery's registry of names outlives an app)."""
    probe = f"probe-{uuid.uuid4().hex[:8]}"
    app = Celery("trace-probe", broker=redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )

    @app.task(name=f"{probe}.parent")
    def parent() -> None:
        # As a canvas step or an agent's hand-over sends on: through Celery.
        app.send_task(f"{probe}.child")

    @app.task(name=f"{probe}.child")
    def child() -> None:
        pass

    @app.task(name=f"{probe}.fails")
    def fails() -> None:
        raise ValueError("no good")

    with installed_spans() as spans:
        trace_tasks()
        with start_worker(app, pool="solo", perform_ping_check=False):
            yield app, spans, probe


def _finished(spans: Spans, name: str) -> None:
    wait_for(lambda: any(s.name == name for s in spans.finished()), 20, 0.05, name)


def test_a_run_continues_its_message_and_what_it_sends_continues_the_run(
    traced_worker: tuple[Celery, Spans, str],
) -> None:
    app, spans, probe = traced_worker
    app.send_task(f"{probe}.parent", headers={"traceparent": _SENT})
    _finished(spans, f"run {probe}.child")
    parent, child = spans.named(f"run {probe}.parent"), spans.named(f"run {probe}.child")
    assert parent.kind.name == child.kind.name == "CONSUMER"
    assert parent.context.trace_id == child.context.trace_id == int(_SENT.split("-")[1], 16)
    assert parent.parent is not None
    assert parent.parent.span_id == int(_SENT.split("-")[2], 16)
    assert child.parent is not None
    assert child.parent.span_id == parent.context.span_id
    assert parent.attributes is not None
    assert parent.attributes["messaging.destination.name"] == "celery"
    assert parent.attributes["aia.task.state"] == "SUCCESS"


def test_a_run_without_a_traceparent_starts_a_trace_and_a_failure_is_an_error(
    traced_worker: tuple[Celery, Spans, str],
) -> None:
    app, spans, probe = traced_worker
    app.send_task(f"{probe}.fails")
    _finished(spans, f"run {probe}.fails")
    run = spans.named(f"run {probe}.fails")
    assert run.parent is None
    assert run.status.status_code.name == "ERROR"
    assert [e.name for e in run.events] == ["exception"]
    assert run.attributes is not None
    assert run.attributes["aia.task.state"] == "FAILURE"
