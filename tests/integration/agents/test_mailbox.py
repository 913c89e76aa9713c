"""Agents' mailboxes without Celery: order per sender, at-least-once delivery to runs, acks,
sending from a run, the agent.message webhook, and tenants kept apart."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from pydantic import BaseModel, Field
from sqlalchemy import select

from aia_workers.agents.contracts import AgentContext, AgentEnvironment, AgentType
from aia_workers.agents.mailbox import (
    IdempotencyKeyReusedError,
    MailboxRepository,
    MessageTooLargeError,
    UnknownRecipientError,
    mailbox_channel,
)
from aia_workers.agents.payloads import AgentRunPayload
from aia_workers.agents.running import run_agent
from aia_workers.agents.store import AgentRepository
from aia_workers.agents.types import AgentTypes
from aia_workers.backbone.announcements import to_webhooks
from aia_workers.db.agents import AgentMessage
from aia_workers.db.migrate import upgrade
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.db.webhooks import WebhookEndpoint, WebhookMessage
from aia_workers.errors import TaskFailure
from aia_workers.ml.artifacts import LocalArtifactStore
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration


class Nothing(BaseModel):
    pass


class ReadInput(BaseModel):
    fail: bool = False
    ack_first: int = Field(default=0, ge=0)


class Reader(AgentType[Nothing, ReadInput]):
    """Reads its inbox, may ack some of it, may then fail."""

    name = "reader"
    summary = "Reads its inbox."
    config_model = Nothing
    input_model = ReadInput

    def run(self, inputs: ReadInput, ctx: AgentContext) -> dict[str, Any]:
        read = ctx.inbox()
        if inputs.ack_first:
            ctx.ack([m.id for m in read[: inputs.ack_first]])
        if inputs.fail:
            raise TaskFailure("failing on purpose, after reading")
        return {"read": [[m.sender, m.seq, m.body["n"], m.deliveries] for m in read]}


class Keeper(Reader):
    """A reader whose runs acknowledge only what they ack themselves."""

    name = "keeper"
    acks_on_success = False


class RelayInput(BaseModel):
    to: str
    bodies: list[dict[str, Any]]


class Relay(AgentType[Nothing, RelayInput]):
    name = "relay"
    summary = "Sends its input's bodies to another agent."
    config_model = Nothing
    input_model = RelayInput

    def run(self, inputs: RelayInput, ctx: AgentContext) -> dict[str, Any]:
        return {"sent": [ctx.send(inputs.to, body) for body in inputs.bodies]}


TYPES = AgentTypes(
    types={"reader": Reader, "keeper": Keeper, "relay": Relay},
    schemas={t.name: t.schemas() for t in (Reader, Keeper, Relay)},
)


@pytest.fixture
def env(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[AgentEnvironment]:
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_home=tmp_path,
        agent_message_max_bytes=1024,
    )
    upgrade(settings)
    engine = make_engine(settings)
    client = redis.Redis.from_url(redis_url)
    yield AgentEnvironment(
        settings=settings,
        sessions=make_sessionmaker(engine),
        artifacts=LocalArtifactStore(settings.artifact_root),
        redis=client,
        events=to_webhooks,
    )
    client.close()
    engine.dispose()


def _agent(env: AgentEnvironment, tenant: str, type_name: str = "reader") -> str:
    with env.sessions.begin() as session:
        name = f"{type_name}-{uuid.uuid4().hex[:8]}"
        return AgentRepository(session, tenant).create(name=name, type_name=type_name, config={}).id


def _post(
    env: AgentEnvironment, tenant: str, agent: str, sender: str, body: dict[str, Any], **kw: Any
) -> AgentMessage:
    with env.sessions.begin() as session:
        row, _ = MailboxRepository(session, tenant, events=to_webhooks).post(
            agent, sender, body, max_body_bytes=env.settings.agent_message_max_bytes, **kw
        )
        return row


def _run(
    env: AgentEnvironment, tenant: str, agent_id: str, inputs: dict[str, Any], run_id: str = ""
) -> dict[str, Any]:
    return run_agent(
        env,
        TYPES,
        tenant,
        AgentRunPayload(agent_id=agent_id, input=inputs),
        run_id=run_id or str(uuid.uuid4()),
        report=lambda *_: None,
    )


def _mailbox(env: AgentEnvironment, tenant: str, agent_id: str, pending: bool = False) -> list[Any]:
    with env.sessions() as session:
        rows, _ = MailboxRepository(session, tenant).page(
            agent_id, pending=pending, limit=100, cursor=None
        )
        return rows


def test_messages_are_numbered_per_sender_and_read_in_the_order_they_were_stored(
    env: AgentEnvironment,
) -> None:
    agent = _agent(env, "t1")
    for sender, n in [("key:a", 1), ("key:b", 2), ("key:a", 3), ("user:c", 4), ("key:b", 5)]:
        _post(env, "t1", agent, sender, {"n": n})
    out = _run(env, "t1", agent, {})
    assert out["read"] == [
        ["key:a", 1, 1, 1],
        ["key:b", 1, 2, 1],
        ["key:a", 2, 3, 1],
        ["user:c", 1, 4, 1],
        ["key:b", 2, 5, 1],
    ]
    rows = _mailbox(env, "t1", agent)
    assert [r.position for r in rows] == [1, 2, 3, 4, 5]
    # The run succeeded: everything it was handed is acknowledged, by it.
    assert _mailbox(env, "t1", agent, pending=True) == []
    assert len({r.acked_by for r in rows}) == 1


def test_what_a_failed_run_read_is_delivered_to_the_next_run_again(env: AgentEnvironment) -> None:
    agent = _agent(env, "t1")
    for n in range(3):
        _post(env, "t1", agent, "key:a", {"n": n})
    with pytest.raises(TaskFailure, match="on purpose"):
        _run(env, "t1", agent, {"fail": True, "ack_first": 1})
    pending = _mailbox(env, "t1", agent, pending=True)
    # Acked before the failure stays acked; the rest waits, counted as delivered once.
    assert [(r.seq, r.deliveries) for r in pending] == [(2, 1), (3, 1)]
    run_id = str(uuid.uuid4())
    out = _run(env, "t1", agent, {}, run_id=run_id)
    assert out["read"] == [["key:a", 2, 1, 2], ["key:a", 3, 2, 2]]
    assert _mailbox(env, "t1", agent, pending=True) == []
    assert [r.acked_by for r in _mailbox(env, "t1", agent)][1:] == [run_id, run_id]


def test_a_type_that_acks_itself_leaves_the_rest_pending(env: AgentEnvironment) -> None:
    agent = _agent(env, "t1", "keeper")
    for n in range(3):
        _post(env, "t1", agent, "key:a", {"n": n})
    assert len(_run(env, "t1", agent, {"ack_first": 2})["read"]) == 3
    assert [r.seq for r in _mailbox(env, "t1", agent, pending=True)] == [3]
    # New messages arrive behind the one still pending.
    _post(env, "t1", agent, "key:b", {"n": 9})
    read = _run(env, "t1", agent, {})["read"]
    assert read == [["key:a", 3, 2, 2], ["key:b", 1, 9, 1]]


def test_a_run_sends_as_its_agent_by_name_or_id_and_a_rerun_sends_once(
    env: AgentEnvironment,
) -> None:
    target = _agent(env, "t1")
    relay = _agent(env, "t1", "relay")
    with env.sessions() as session:
        found = AgentRepository(session, "t1").get(target)
        assert found is not None
        name = found.name
    follower = env.redis.pubsub()
    follower.subscribe(mailbox_channel("t1", target))
    run_id = str(uuid.uuid4())
    inputs = {"to": name, "bodies": [{"n": 1}, {"n": 2}]}
    first = _run(env, "t1", relay, inputs, run_id=run_id)
    # The same run delivered again (acks_late) sends the same messages: stored once.
    assert _run(env, "t1", relay, inputs, run_id=run_id) == first
    _run(env, "t1", relay, {"to": target, "bodies": [{"n": 3}]})
    rows = _mailbox(env, "t1", target)
    assert [(r.sender, r.seq, r.body) for r in rows] == [
        (f"agent:{relay}", 1, {"n": 1}),
        (f"agent:{relay}", 2, {"n": 2}),
        (f"agent:{relay}", 3, {"n": 3}),
    ]
    assert [r.id for r in rows[:2]] == first["sent"]
    announced = []
    while (message := follower.get_message(timeout=1)) is not None:
        if message["type"] == "message":
            announced.append(orjson.loads(message["data"])["position"])
    assert announced == [1, 2, 3]
    follower.close()
    with pytest.raises(UnknownRecipientError, match="no agent 'nobody'"):
        _run(env, "t1", relay, {"to": "nobody", "bodies": [{"n": 1}]})


def test_each_message_goes_to_the_webhook_outbox_with_it(env: AgentEnvironment) -> None:
    now = datetime.now(UTC)
    with env.sessions.begin() as session:
        session.add(
            WebhookEndpoint(
                id=str(uuid.uuid4()),
                tenant_id="t1",
                url="https://example.com/messages",
                events=["agent.message"],
                enabled=True,
                secret="whsec_" + "A" * 44,
                created_at=now,
                updated_at=now,
            )
        )
    agent = _agent(env, "t1")
    row = _post(env, "t1", agent, "key:a", {"n": 1, "text": "hello"})
    with env.sessions() as session:
        (sent,) = session.scalars(
            select(WebhookMessage).where(WebhookMessage.event_type == "agent.message")
        )
        name = AgentRepository(session, "t1").get(agent).name  # type: ignore[union-attr]
    assert sent.payload["message_id"] == row.id
    assert {k: sent.payload[k] for k in ("agent_id", "agent", "sender", "seq", "body")} == {
        "agent_id": agent,
        "agent": name,
        "sender": "key:a",
        "seq": 1,
        "body": {"n": 1, "text": "hello"},
    }
    assert sent.dedupe_key == f"agent.message:{row.id}"


def test_tenants_do_not_see_or_reach_each_others_mailboxes(env: AgentEnvironment) -> None:
    mine = _agent(env, "t1")
    _post(env, "t1", mine, "key:a", {"n": 1})
    with pytest.raises(UnknownRecipientError):
        _post(env, "t2", mine, "key:x", {"n": 2})
    assert _mailbox(env, "t2", mine) == []
    # A run of another tenant's agent of the same id is not this one's.
    theirs = _agent(env, "t2")
    assert _run(env, "t2", theirs, {})["read"] == []
    with env.sessions.begin() as session:
        assert (
            MailboxRepository(session, "t2").ack(
                mine, "run-x", [r.id for r in _mailbox(env, "t1", mine)]
            )
            == []
        )
    assert len(_mailbox(env, "t1", mine, pending=True)) == 1


def test_idempotency_keys_and_the_size_limit(env: AgentEnvironment) -> None:
    agent = _agent(env, "t1")
    first = _post(env, "t1", agent, "key:a", {"n": 1}, idempotency_key="k1")
    again = _post(env, "t1", agent, "key:a", {"n": 1}, idempotency_key="k1")
    assert again.id == first.id
    with pytest.raises(IdempotencyKeyReusedError):
        _post(env, "t1", agent, "key:a", {"n": 2}, idempotency_key="k1")
    # Another sender's key is its own.
    assert _post(env, "t1", agent, "key:b", {"n": 2}, idempotency_key="k1").id != first.id
    with pytest.raises(MessageTooLargeError, match="AIA_AGENT_MESSAGE_MAX_BYTES"):
        _post(env, "t1", agent, "key:a", {"text": "x" * 2000})
    assert len(_mailbox(env, "t1", agent)) == 2


def test_deleting_an_agent_deletes_its_mailbox(env: AgentEnvironment) -> None:
    agent = _agent(env, "t1")
    _post(env, "t1", agent, "key:a", {"n": 1})
    with env.sessions.begin() as session:
        store = AgentRepository(session, "t1")
        store.delete(store.get(agent))  # type: ignore[arg-type]
    with env.sessions() as session:
        left = session.scalars(select(AgentMessage).where(AgentMessage.agent_id == agent))
        assert list(left) == []


def test_concurrent_senders_get_gapless_numbers(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=postgres_url, data_home=tmp_path)
    upgrade(settings)
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        agent = (
            AgentRepository(session, "t1")
            .create(name=f"busy-{uuid.uuid4().hex[:6]}", type_name="reader", config={})
            .id
        )

    def send(sender: str) -> None:
        for n in range(10):
            with sessions.begin() as session:
                MailboxRepository(session, "t1").post(agent, sender, {"n": n}, max_body_bytes=1024)

    threads = [threading.Thread(target=send, args=(f"key:{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sessions() as session:
        rows, _ = MailboxRepository(session, "t1").page(
            agent, pending=False, limit=100, cursor=None
        )
    engine.dispose()
    assert [r.position for r in rows] == list(range(1, 41))
    for i in range(4):
        mine = [r for r in rows if r.sender == f"key:{i}"]
        assert [(r.seq, r.body["n"]) for r in mine] == [(n + 1, n) for n in range(10)]
