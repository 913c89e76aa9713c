"""One trace across real processes: the API's request and enqueue, the worker's run,
the recorder's announcement and the webhook's delivery; and the worker's JSON log lines.

The API, recorder and worker export over OTLP/HTTP to a collector in this test
process; the worker (default and webhooks queues, one threads pool) logs JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.otlp_collector import Collector, ReceivedSpan
from tests.support import Stack, private_stack, wait_for
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e

_ENV = {
    # The SDK's batch delay (ms): spans reach the collector within a moment.
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "AIA_WEBHOOK_RELAY_INTERVAL_SECONDS": "0.2",
    "AIA_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.1"]',
}


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as running:
        yield running


@pytest.fixture
def traced_stack(tmp_path: Path, redis_url: str, collector: Collector) -> Iterator[Stack]:
    env = {**_ENV, "AIA_OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
    stack = private_stack(tmp_path, redis_url, role="admin", env=env)
    try:
        stack.start_recorder()
        stack.start_worker(
            f"traced-{tmp_path.name}",
            "default,webhooks",
            pool="threads",
            concurrency=4,
            env={"AIA_LOG_FORMAT": "json"},
        )
        yield stack
    finally:
        stack.stop()


def _one(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan:
    found = [s for s in spans if s.service == service and s.name == name]
    assert len(found) == 1, (service, name, spans)
    return found[0]


def test_one_trace_from_request_to_webhook_delivery(
    traced_stack: Stack, collector: Collector
) -> None:
    worker = "aia-worker-default-webhooks"
    with traced_stack.client() as client, Receiver() as receiver:
        hook = client.post("/v1/webhooks", json={"url": receiver.url, "events": ["task.succeeded"]})
        assert hook.status_code == 201, hook.text
        response = client.post(
            "/v1/tasks", json={"type": "diagnostics.sleep", "payload": {"seconds": 0, "steps": 1}}
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["id"]
        version, trace_id, request_span, flags = response.headers["traceparent"].split("-")
        assert version == "00"
        assert int(flags, 16) & 1  # sampled

        [delivery] = receiver.wait_for_requests(1, timeout=30)
        # The receiver is told the trace too, by the delivery's span.
        assert delivery.headers["traceparent"].split("-")[1] == trace_id
        assert json.loads(delivery.body)["data"]["task_id"] == task_id

        def whole() -> list[ReceivedSpan] | None:
            spans = collector.spans(trace_id)
            names = {(s.service, s.name) for s in spans}
            return spans if (worker, "deliver task.succeeded") in names else None

        spans = wait_for(whole, 30, what="the delivery's span")

    server = _one(spans, "aia-api", "POST /v1/tasks")
    assert (server.kind, server.span_id, server.parent_id) == ("server", request_span, "")
    assert server.attributes["http.route"] == "/v1/tasks"
    assert server.attributes["http.response.status_code"] == 202
    enqueue = _one(spans, "aia-api", "enqueue diagnostics.sleep")
    assert (enqueue.kind, enqueue.parent_id) == ("producer", server.span_id)
    run = _one(spans, worker, "run diagnostics.sleep")
    assert (run.kind, run.parent_id) == ("consumer", enqueue.span_id)
    assert run.attributes["messaging.message.id"] == task_id
    assert run.attributes["aia.tenant"] == "default"
    announce = _one(spans, "aia-recorder", "publish task.succeeded")
    assert (announce.kind, announce.parent_id) == ("producer", run.span_id)
    relayed = _one(spans, worker, "run webhooks.deliver")
    assert (relayed.kind, relayed.parent_id) == ("consumer", announce.span_id)
    deliver = _one(spans, worker, "deliver task.succeeded")
    assert (deliver.kind, deliver.parent_id) == ("client", relayed.span_id)
    assert deliver.attributes["http.response.status_code"] == 200
    # The receiver's host only: a webhook URL may hold a token.
    assert deliver.attributes["server.address"] == "127.0.0.1"
    assert not any(receiver.url in str(v) for v in deliver.attributes.values())
    assert delivery.headers["traceparent"].split("-")[2] == deliver.span_id

    # The worker logged JSON, one object a line; its lines about the task say so.
    lines = [
        json.loads(line)
        for line in traced_stack.processes[-1].output().splitlines()
        if line.startswith("{")
    ]
    about = [line for line in lines if line["task_id"] == task_id]
    assert about, lines[-20:]
    for line in about:
        assert (line["tenant"], line["queue"], line["process"]) == ("default", "default", worker)
        assert line["trace_id"] == trace_id
        assert {"time", "level", "logger", "message", "pid"} <= set(line)
    assert any("succeeded" in line["message"] for line in about)
