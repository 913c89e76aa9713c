"""The trace context on its way through Redis and the database, in one process:
the API's message, the task's end event, the recorder's outbox rows and the relay."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aia_api.identity.principal import Principal
from aia_api.identity.roles import Role
from aia_api.tasks.service import TaskService
from aia_workers.backbone.app import create_celery_app
from aia_workers.backbone.broker import celery_message
from aia_workers.backbone.keys import RECORDER_STREAM
from aia_workers.backbone.publisher import EventPublisher
from aia_workers.backbone.recorder import Recorder
from aia_workers.backbone.scripts import TRACEPARENT_FIELD
from aia_workers.backbone.states import Event
from aia_workers.db.migrate import upgrade
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.db.webhooks import WebhookEndpoint, WebhookMessage
from aia_workers.settings import Settings
from aia_workers.tracing.context import context_of, traceparent
from aia_workers.webhooks.relay import lease_due
from tests.support import TEST_LIMITS, record_submit
from tests.tracing_memory import Spans, installed_spans

pytestmark = pytest.mark.integration

_RUN = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OPERATOR = Principal("key", "k1", "t1", Role.OPERATOR)


@pytest.fixture
def spans() -> Iterator[Spans]:
    with installed_spans() as kept:
        yield kept


def test_the_api_s_message_names_the_enqueue_span_a_child_of_the_request(
    redis_url: str, tmp_path: Path, spans: Spans
) -> None:
    settings = Settings(redis_url=redis_url, data_home=tmp_path)
    body = {"type": "diagnostics.sleep", "payload": {"seconds": 0, "steps": 1}}

    async def submit() -> str:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            service = TaskService(
                settings,
                client,
                make_sessionmaker(make_engine(settings)),
                Celery("unused"),
                tracer=spans.tracer,
            )
            with spans.tracer.start_as_current_span("POST /v1/tasks"):
                submitted = await service.submit(OPERATOR, body)
            return str(submitted.view["id"])
        finally:
            await client.aclose()

    task_id = asyncio.run(submit())
    request = spans.named("POST /v1/tasks")
    enqueue = spans.named("enqueue diagnostics.sleep")
    assert enqueue.kind.name == "PRODUCER"
    assert enqueue.parent is not None
    assert enqueue.parent.span_id == request.context.span_id
    assert enqueue.attributes is not None
    assert enqueue.attributes["messaging.message.id"] == task_id
    [raw] = redis.Redis.from_url(redis_url).lrange("default", 0, -1)
    headers = json.loads(raw)["headers"]
    ctx = enqueue.context
    assert (
        headers["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    )
    assert headers["id"] == task_id


def test_the_traceparent_header_is_where_celery_puts_a_sender_s_own(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    app = Celery("probe", broker=redis_url)
    app.conf.update(task_serializer="json", accept_content=["json"])
    kwargs = {"payload": {}, "tenant": "t1"}
    app.send_task(
        "diagnostics.sleep",
        kwargs=kwargs,
        queue="default",
        task_id="tid-1",
        headers={"traceparent": _RUN},
    )
    theirs = json.loads(client.lrange("default", 0, -1)[0])
    ours = json.loads(
        celery_message(
            task_id="tid-1",
            name="diagnostics.sleep",
            kwargs=kwargs,
            queue="default",
            traceparent=_RUN,
        )
    )
    assert ours["headers"]["traceparent"] == theirs["headers"]["traceparent"] == _RUN
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(
        base64.b64decode(theirs["body"])
    )
    # Untraced, the message is exactly as before: no header at all.
    plain = json.loads(celery_message(task_id="t", name="n", kwargs={}, queue="default"))
    assert "traceparent" not in plain["headers"]
    assert create_celery_app().conf.task_protocol == 2


@pytest.fixture
def sessions(database_url: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


def _subscribe(sessions: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.add(
            WebhookEndpoint(
                id=str(uuid.uuid4()),
                tenant_id="t1",
                url="https://example.com/hook",
                events=["task.succeeded"],
                enabled=True,
                secret="whsec_" + "A" * 44,
                created_at=now,
                updated_at=now,
            )
        )


def _finish(redis_url: str, traced: str | None) -> str:
    client = redis.Redis.from_url(redis_url)
    task_id = str(uuid.uuid4())
    record_submit(client, task_id)
    publisher = EventPublisher(client, TEST_LIMITS)
    publisher.transition(task_id, Event.STARTED)
    fields = {"result": "1"} | ({TRACEPARENT_FIELD: traced} if traced else {})
    publisher.transition(task_id, Event.SUCCEEDED, data={"result": 1}, fields=fields)
    return task_id


def _record(redis_url: str, sessions: sessionmaker[Session]) -> list[WebhookMessage]:
    recorder = Recorder(redis.Redis.from_url(redis_url, decode_responses=True), sessions)
    recorder._ensure_group()
    while recorder.step(block_ms=100):
        pass
    with sessions() as session:
        return list(session.scalars(select(WebhookMessage)))


def test_a_traced_end_is_announced_in_a_span_of_its_run_and_the_row_names_it(
    redis_url: str, sessions: sessionmaker[Session], spans: Spans
) -> None:
    _subscribe(sessions)
    _finish(redis_url, _RUN)
    untraced = _finish(redis_url, None)
    messages = _record(redis_url, sessions)
    assert len(messages) == 2
    [traced] = [m for m in messages if m.traceparent]
    assert [m.payload["task_id"] for m in messages if not m.traceparent] == [untraced]
    publish = spans.named("publish task.succeeded")
    assert publish.kind.name == "PRODUCER"
    assert publish.parent is not None
    assert publish.parent.span_id == 0x00F067AA0BA902B7
    assert publish.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert traced.traceparent is not None
    assert context_of(traced.traceparent) is not None
    assert traced.traceparent.split("-")[2] == f"{publish.context.span_id:016x}"
    # The relay hands the traceparent to the delivery task it sends.
    with sessions.begin() as session:
        leased = lease_due(session, now=datetime.now(UTC), lease_seconds=10, tenant_max_inflight=10)
    assert dict(leased.traces) == {traced.id: traced.traceparent}
    assert len(leased.messages) == 2


def test_with_tracing_off_the_row_keeps_the_run_s_traceparent(
    redis_url: str, sessions: sessionmaker[Session]
) -> None:
    _subscribe(sessions)
    _finish(redis_url, _RUN)
    [message] = _record(redis_url, sessions)
    assert message.traceparent == _RUN


def test_the_end_event_on_the_recorder_stream_carries_the_run_only_when_traced(
    redis_url: str, spans: Spans
) -> None:
    with spans.tracer.start_as_current_span("run") as run:
        traced = traceparent(run)
    _finish(redis_url, traced)
    _finish(redis_url, None)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    entries: list[tuple[str, dict[str, str]]] = client.xrange(RECORDER_STREAM)  # type: ignore[assignment]
    carried = [e[TRACEPARENT_FIELD] for _, e in entries if TRACEPARENT_FIELD in e]
    # The succeeded entry of the first task only: the start came before it was set.
    assert carried == [traced]
