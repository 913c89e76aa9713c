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

from aia_workers.agents.concurrency import (
    AgentSlots,
    ConcurrencyPolicy,
    Handover,
    celery_sender,
    retire_call,
)
from aia_workers.agents.slot_scripts import RETIRE_LUA
from aia_workers.agents.tasking import resend_options
from aia_workers.backbone.broker import celery_message
from aia_workers.backbone.event import TaskEvent
from aia_workers.backbone.events import transition_args
from aia_workers.backbone.keys import (
    AGENTS_ACTIVE_KEY,
    RECORDER_STREAM,
    agent_entries_key,
    agent_limit_key,
    agent_member,
    agent_parked_key,
    agent_slots_key,
    agent_turns_key,
    channel,
    events_key,
    pending_key,
    task_key,
)
from aia_workers.backbone.scripts import AGENT_LINE_FIELD, TRANSITION_LUA
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
    return AgentSlots(client, POLICY, TEST_LIMITS)


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


def _move(client: redis.Redis, run_id: str, event: Event, **data: object) -> None:
    keys, args = transition_args(
        task_id=run_id, event=event, now=time.time(), limits=TEST_LIMITS, data=data
    )
    client.register_script(TRANSITION_LUA)(keys=keys, args=args)


def _events(client: redis.Redis, run_id: str) -> list[TaskEvent]:
    entries: list[tuple[str, dict[str, str]]] = client.xrange(events_key(run_id))  # type: ignore[assignment]
    return [TaskEvent.from_json(fields["e"]) for _, fields in entries]


def _agent_keys(client: redis.Redis, agent: str = AGENT) -> list[str]:
    return sorted(client.scan_iter(f"aia:agent:{TENANT}:{agent}:*"))


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


def test_parking_a_run_announces_its_wait_on_its_own_stream(
    client: redis.Redis, slots: AgentSlots
) -> None:
    first, second, third = _submitted(client, 3)
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(channel(third))
    assert _admit(slots, first)[0] == "go"
    assert _admit(slots, second)[0] == "parked"
    assert _admit(slots, third)[0] == "parked"
    # The run that went straight in has nothing to announce.
    assert [e.event for e in _events(client, first)] == ["queued"]
    _, waiting = _events(client, third)
    assert (waiting.event, waiting.status, waiting.seq) == ("progress", "queued", 2)
    assert waiting.data["waiting"] == {"agent_id": AGENT, "ahead": 1}
    assert waiting.data["message"] == f"waiting for a slot of agent {AGENT}: 1 run ahead"
    assert _events(client, second)[1].data["waiting"]["ahead"] == 0
    # Its status stays queued, with no progress; live subscribers and the recorder see it.
    record = client.hgetall(task_key(third))
    assert (record["status"], record["seq"], record.get("progress")) == ("queued", "2", None)
    live = wait_for(lambda: pubsub.get_message(timeout=0.1), 5, 0, "the waiting event, live")
    pubsub.close()
    assert TaskEvent.from_json(live["data"]) == waiting
    entries: list[tuple[str, dict[str, str]]] = client.xrange(RECORDER_STREAM)  # type: ignore[assignment]
    assert waiting.to_json() in [f["e"] for _, f in entries if f["task"] == third]
    # Its message delivered again: still parked, and said once.
    assert _admit(slots, third)[0] == "parked"
    assert len(_events(client, third)) == 2
    # Handed a slot and started: the next event follows in sequence.
    assert [h.run_id for h in _release(slots, first)] == [second]
    assert _admit(slots, second, turn=1)[0] == "go"
    _move(client, second, Event.STARTED)
    assert [(e.event, e.seq) for e in _events(client, second)] == [
        ("queued", 1),
        ("progress", 2),
        ("started", 3),
    ]


def test_a_cancelled_run_leaves_the_line_at_once_wherever_it_is(
    client: redis.Redis, slots: AgentSlots
) -> None:
    first, *line = _submitted(client, 4)
    assert _admit(slots, first)[0] == "go"
    for run_id in line:
        assert _admit(slots, run_id)[0] == "parked"
    cancelled = line[1]
    assert client.hget(task_key(cancelled), AGENT_LINE_FIELD)
    _move(client, cancelled, Event.CANCELLED, reason="cancelled by request")
    # Out of the line and its bookkeeping in the same step as its record ends.
    assert _parked(client) == [line[0], line[2]]
    assert slots.waiting(TENANT, AGENT) == (1, 2)
    assert client.hget(agent_entries_key(TENANT, AGENT), cancelled) is None
    assert client.hget(agent_turns_key(TENANT, AGENT), cancelled) is None
    assert client.hget(task_key(cancelled), AGENT_LINE_FIELD) is None
    # The runs behind it move up in order; it is never handed a slot.
    order = []
    previous = first
    while handed := _release(slots, previous):
        (nxt,) = handed
        assert _admit(slots, nxt.run_id, turn=nxt.turn)[0] == "go"
        order.append(previous := nxt.run_id)
    assert order == [line[0], line[2]]
    # Its message, should it come again, starts nothing.
    assert _admit(slots, cancelled)[0] == "terminal"
    assert _agent_keys(client) == [agent_limit_key(TENANT, AGENT)]


def test_a_run_cancelled_on_its_way_to_a_slot_gives_the_slot_back(
    client: redis.Redis, slots: AgentSlots
) -> None:
    first, second, third = _submitted(client, 3)
    assert _admit(slots, first)[0] == "go"
    assert _admit(slots, second)[0] == "parked"
    assert _admit(slots, third)[0] == "parked"
    assert [h.run_id for h in _release(slots, first)] == [second]
    _move(client, second, Event.CANCELLED, reason="cancelled by request")
    assert _running(client) == set()
    assert _parked(client) == [third]
    # The next settle (the sweep's) hands the slot on; the cancelled run's message is dropped.
    assert [h.run_id for h in slots.settle(TENANT, AGENT)] == [third]
    assert _admit(slots, second, turn=1)[0] == "terminal"
    assert _running(client) == {third}


def test_a_started_run_keeps_its_slot_through_its_outcome(
    client: redis.Redis, slots: AgentSlots
) -> None:
    first, second = _submitted(client, 2)
    assert _admit(slots, first)[0] == "go"
    assert _admit(slots, second)[0] == "parked"
    (handed,) = _release(slots, first)
    assert _admit(slots, second, turn=handed.turn)[0] == "go"
    _move(client, second, Event.STARTED)
    _move(client, second, Event.SUCCEEDED)
    # The outcome's transition leaves the slot to the release that follows it.
    assert _running(client) == {second}
    assert _release(slots, second) == ()
    assert not client.sismember(AGENTS_ACTIVE_KEY, agent_member(TENANT, AGENT))


def test_a_retired_agent_leaves_no_key_once_its_runs_are_over(
    client: redis.Redis, slots: AgentSlots
) -> None:
    retire = client.register_script(RETIRE_LUA)

    def retired(agent: str = AGENT) -> list[str]:
        keys, args = retire_call(TENANT, agent, now=time.time()).keys_and_args()
        return retire(keys=keys, args=args)  # type: ignore[no-any-return]

    running, *waiting = _submitted(client, 3)
    assert _admit(slots, running)[0] == "go"
    for run_id in waiting:
        assert _admit(slots, run_id)[0] == "parked"
    # The runs in line come back for the caller to fail; the limit goes at once.
    assert retired() == waiting
    assert client.get(agent_limit_key(TENANT, AGENT)) is None
    for run_id in waiting:
        _move(client, run_id, Event.FAILED, error={"message": "gone"})
    assert _parked(client) == []
    # A message of the agent that arrives now asks for its limit (and finds it gone).
    (late,) = _submitted(client, 1)
    assert _admit(slots, late, cap=None) == ("unknown", [])
    # The running run finishes; then nothing of the agent is left.
    assert _release(slots, running) == ()
    assert _agent_keys(client) == []
    assert not client.sismember(AGENTS_ACTIVE_KEY, agent_member(TENANT, AGENT))
    # An idle agent goes at once.
    (idle,) = _submitted(client, 1)
    assert _admit(slots, idle, agent="idle-agent")[0] == "go"
    assert slots.release(tenant=TENANT, agent_id="idle-agent", run_id=idle) == ()
    assert _agent_keys(client, "idle-agent") == [agent_limit_key(TENANT, "idle-agent")]
    assert retired("idle-agent") == []
    assert _agent_keys(client, "idle-agent") == []


def test_a_lapsed_slot_is_freed_and_handed_on(client: redis.Redis) -> None:
    short = AgentSlots(
        client, ConcurrencyPolicy(lease_seconds=0.5, handover_seconds=60), TEST_LIMITS
    )
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
    short = AgentSlots(client, ConcurrencyPolicy(lease_seconds=30, handover_seconds=1), TEST_LIMITS)
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
