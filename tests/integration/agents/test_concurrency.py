"""Per-agent concurrency on a real Redis: slots taken, parked runs in line, hand-overs, leases,
and a parked workflow step sent again through a real broker as its canvas sent it."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from celery import Celery
from celery.app.task import Context

from aia_workers.agents.concurrency import AgentSlots, ConcurrencyPolicy, Handover, celery_sender
from aia_workers.agents.tasking import resend_options
from aia_workers.backbone.broker import celery_message
from aia_workers.backbone.events import transition_args
from aia_workers.backbone.keys import (
    AGENTS_ACTIVE_KEY,
    agent_limit_key,
    agent_member,
    agent_parked_key,
    agent_slots_key,
    pending_key,
    task_key,
)
from aia_workers.backbone.scripts import TRANSITION_LUA
from aia_workers.backbone.states import Event
from aia_workers.workflows.canvas import build_canvas, step_signature
from tests.support import TEST_LIMITS, record_submit, wait_for

pytestmark = pytest.mark.integration

TENANT = "t1"
AGENT = "agent-1"
POLICY = ConcurrencyPolicy(lease_seconds=30, handover_seconds=60)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def slots(client: redis.Redis) -> AgentSlots:
    return AgentSlots(client, POLICY)


def _submitted(client: redis.Redis, count: int) -> list[str]:
    """Runs recorded as the API records them, in submission order, their messages queued."""
    ids = []
    for _ in range(count):
        run_id = str(uuid.uuid4())
        message = celery_message(
            task_id=run_id, name="agents.run", kwargs={"payload": {}}, queue="default"
        )
        assert record_submit(client, run_id, broker_message=message)[0] == "created"
        ids.append(run_id)
        time.sleep(0.002)  # distinct submission times
    return ids


def _admit(
    slots: AgentSlots, run_id: str, *, cap: int | None = 1, turn: int = 0, agent: str = AGENT
) -> tuple[str, list[str]]:
    admission = slots.admit(
        tenant=TENANT,
        agent_id=agent,
        run_id=run_id,
        cap=cap,
        turn=turn,
        name="agents.run",
        kwargs={"payload": {"agent_id": agent, "input": {}}, "tenant": TENANT},
        queue="default",
    )
    return admission.outcome, [h.run_id for h in admission.handed]


def _release(slots: AgentSlots, run_id: str) -> tuple[Handover, ...]:
    return slots.release(tenant=TENANT, agent_id=AGENT, run_id=run_id)


def _running(client: redis.Redis) -> set[str]:
    return set(client.zrange(agent_slots_key(TENANT, AGENT), 0, -1))  # type: ignore[arg-type]


def _parked(client: redis.Redis) -> list[str]:
    return client.zrange(agent_parked_key(TENANT, AGENT), 0, -1)  # type: ignore[return-value]


def test_at_most_max_concurrency_runs_hold_a_slot(client: redis.Redis, slots: AgentSlots) -> None:
    a, b, c = _submitted(client, 3)
    # With none of its runs waiting or running, the caller must say the agent's limit.
    assert _admit(slots, a, cap=None) == ("unknown", [])
    assert _admit(slots, a, cap=2) == ("go", [])
    # Then the runs behind are admitted under the stored one.
    assert _admit(slots, b, cap=None) == ("go", [])
    assert _admit(slots, c, cap=None) == ("parked", [])
    assert _running(client) == {a, b}
    assert _parked(client) == [c]
    # Another agent's slots are its own.
    assert _admit(slots, c, cap=1, agent="agent-2")[0] == "go"


def test_a_parked_run_leaves_the_pending_index_and_stays_parked_when_delivered_again(
    client: redis.Redis, slots: AgentSlots
) -> None:
    first, second = _submitted(client, 2)
    assert _admit(slots, first)[0] == "go"
    assert _admit(slots, second)[0] == "parked"
    # Its message is acknowledged: the rescuer must not queue it again.
    assert client.zscore(pending_key("default"), second) is None
    assert client.hget(task_key(second), "message") is None
    assert client.hget(task_key(second), "status") == "queued"
    # The same message again (its worker died before acknowledging it): still parked, once.
    assert _admit(slots, second)[0] == "parked"
    assert _parked(client) == [second]


def test_freed_slots_go_to_parked_runs_in_submission_order(
    client: redis.Redis, slots: AgentSlots
) -> None:
    first, *rest = _submitted(client, 4)
    assert _admit(slots, first)[0] == "go"
    # Their messages arrive out of order; the line keeps submission order.
    for run_id in reversed(rest):
        assert _admit(slots, run_id)[0] == "parked"
    assert _parked(client) == rest
    handed = _release(slots, first)
    assert [(h.run_id, h.turn) for h in handed] == [(rest[0], 1)]
    assert handed[0].kwargs["payload"]["agent_id"] == AGENT
    assert (handed[0].name, handed[0].queue) == ("agents.run", "default")
    # The slot is reserved for it: a newcomer parks behind the line.
    (newcomer,) = _submitted(client, 1)
    assert _admit(slots, newcomer)[0] == "parked"
    # The old message (turn 0) is a stale copy; the one sent again (turn 1) starts it.
    assert _admit(slots, rest[0], turn=0)[0] == "stale"
    assert _admit(slots, rest[0], turn=1)[0] == "go"
    order = [rest[0]]
    for _ in range(3):
        (nxt,) = _release(slots, order[-1])
        assert _admit(slots, nxt.run_id, turn=nxt.turn)[0] == "go"
        order.append(nxt.run_id)
    assert order == [*rest, newcomer]
    assert _release(slots, newcomer) == ()
    # An agent with nothing running or waiting is swept no more; its limit stays.
    assert not client.sismember(AGENTS_ACTIVE_KEY, agent_member(TENANT, AGENT))
    assert _running(client) == set()
    assert _parked(client) == []
    assert client.get(agent_limit_key(TENANT, AGENT)) == "1"


def test_a_cancelled_parked_run_leaves_the_line(client: redis.Redis, slots: AgentSlots) -> None:
    first, cancelled, third = _submitted(client, 3)
    assert _admit(slots, first)[0] == "go"
    assert _admit(slots, cancelled)[0] == "parked"
    assert _admit(slots, third)[0] == "parked"
    keys, args = transition_args(
        task_id=cancelled, event=Event.CANCELLED, now=time.time(), limits=TEST_LIMITS
    )
    client.register_script(TRANSITION_LUA)(keys=keys, args=args)
    assert [h.run_id for h in _release(slots, first)] == [third]
    assert _parked(client) == [third]
    # Its message, should it come again, starts nothing.
    assert _admit(slots, cancelled)[0] == "terminal"
    assert _running(client) == {third}


def test_a_lapsed_slot_is_freed_and_handed_on(client: redis.Redis) -> None:
    short = AgentSlots(client, ConcurrencyPolicy(lease_seconds=0.5, handover_seconds=60))
    crashed, waiting = _submitted(client, 2)
    assert _admit(short, crashed)[0] == "go"
    assert _admit(short, waiting)[0] == "parked"
    # While its process renews the lease, the slot stays taken.
    assert short.renew([(TENANT, AGENT, crashed)]) == 1
    assert short.sweep() == ()
    # Its process died: no renewal; one lease later the sweep frees and hands the slot on.
    handed = wait_for(short.sweep, 5, 0.1, "the lapsed slot to be handed on")
    assert [(h.run_id, h.turn) for h in handed] == [(waiting, 1)]
    # The crashed run's message comes back from the broker and queues like a newcomer.
    assert _admit(short, crashed)[0] == "parked"
    assert _parked(client) == [crashed, waiting]
    # A renewal of the freed slot does not take it back.
    short.renew([(TENANT, AGENT, crashed)])
    assert _running(client) == {waiting}


def test_a_handed_over_run_whose_message_was_lost_is_sent_again(client: redis.Redis) -> None:
    short = AgentSlots(client, ConcurrencyPolicy(lease_seconds=30, handover_seconds=1))
    first, second = _submitted(client, 2)
    assert _admit(short, first)[0] == "go"
    assert _admit(short, second)[0] == "parked"
    assert [h.turn for h in _release(short, first)] == [1]
    # The message of turn 1 never arrives: after handover_seconds it is sent again.
    handed = wait_for(short.sweep, 5, 0.1, "the lost hand-over to be sent again")
    assert [(h.run_id, h.turn) for h in handed] == [(second, 2)]
    assert _admit(short, second, turn=1)[0] == "stale"
    assert _admit(short, second, turn=2)[0] == "go"
    assert _parked(client) == []


def test_raising_the_limit_hands_out_slots_and_lowering_waits_for_runs_to_end(
    client: redis.Redis, slots: AgentSlots
) -> None:
    runs = _submitted(client, 5)
    assert _admit(slots, runs[0])[0] == "go"
    for run_id in runs[1:]:
        assert _admit(slots, run_id)[0] == "parked"
    assert [h.run_id for h in slots.settle(TENANT, AGENT, cap=3)] == runs[1:3]
    for run_id in runs[1:3]:
        assert _admit(slots, run_id, cap=3, turn=1)[0] == "go"
    assert slots.settle(TENANT, AGENT, cap=1) == ()
    assert _running(client) == set(runs[:3])
    # Three run under a limit of one now: the next starts only when all three have ended.
    assert _release(slots, runs[0]) == ()
    assert _release(slots, runs[1]) == ()
    assert [h.run_id for h in _release(slots, runs[2])] == [runs[3]]
    # A change is stored for an idle agent too, and wins over a start that read
    # the database before it.
    assert slots.settle(TENANT, "idle-agent", cap=5) == ()
    (later,) = _submitted(client, 1)
    assert _admit(slots, later, cap=2, agent="idle-agent")[0] == "go"
    assert client.get(agent_limit_key(TENANT, "idle-agent")) == "5"


def _queued_messages(client: redis.Redis, queue: str) -> list[tuple[dict[str, Any], Context]]:
    """Every message on ``queue``, oldest first, taken off it: its headers, embed and
    kwargs, and the request a worker would make of it."""
    found = []
    while (raw := client.rpop(queue)) is not None:
        envelope = orjson.loads(str(raw))
        args, kwargs, embed = orjson.loads(base64.b64decode(envelope["body"]))
        headers = envelope["headers"]
        request = Context(
            headers,
            **embed,
            args=args,
            kwargs=kwargs,
            delivery_info={"exchange": "", "routing_key": queue},
        )
        found.append(({**headers, **embed, "kwargs": kwargs}, request))
    return found


@pytest.mark.parametrize(
    "graph",
    [
        # A chain: the message of its first step carries the rest of it.
        [["x"], ["y"], ["z"]],
        # A chord: each step of its header carries the body and its place in the group.
        [["a", "b"], ["c"], ["d"]],
    ],
)
def test_a_parked_workflow_step_is_sent_again_with_its_place_in_the_canvas(
    client: redis.Redis, slots: AgentSlots, redis_url: str, graph: list[list[str]]
) -> None:
    app = Celery("resend", broker=redis_url, backend=redis_url, set_as_current=False)
    queue = f"resend-{uuid.uuid4().hex[:8]}"
    task_ids = {step: str(uuid.uuid4()) for level in graph for step in level}
    canvas = build_canvas(
        graph,
        lambda step: step_signature(app, TENANT, "run-1", step, task_ids[step], AGENT).set(
            queue=queue
        ),
    )
    canvas.apply_async()
    sent = _queued_messages(client, queue)
    assert [m["id"] for m, _ in sent] == [task_ids[s] for s in graph[0]]
    for message, request in sent:
        (holder,) = _submitted(client, 1)
        assert _admit(slots, holder)[0] == "go"
        parked = slots.admit(
            tenant=TENANT,
            agent_id=AGENT,
            run_id=request.id,
            cap=None,
            turn=0,
            name=request.task,
            kwargs=request.kwargs,
            queue=queue,
            options=resend_options(request),
        )
        assert parked.outcome == "parked"
        (handover,) = _release(slots, holder)
        celery_sender(app)(handover)
        ((again, _),) = _queued_messages(client, queue)
        assert again["aia_agent_turn"] == 1
        # The same task in the same place: the chain goes on from it, the chord's
        # body counts it among its group, in its place.
        same = ("id", "task", "kwargs", "root_id", "parent_id", "group", "group_index")
        assert {k: again[k] for k in same} == {k: message[k] for k in same}
        canvas_context = ("chain", "chord", "callbacks", "errbacks")
        assert {k: again[k] for k in canvas_context} == {k: message[k] for k in canvas_context}
        assert again["chain"] or again["chord"]
        assert again["kwargs"]["payload"]["agent_id"] == AGENT
        assert _admit(slots, request.id, turn=1)[0] == "go"
        assert _release(slots, request.id) == ()
