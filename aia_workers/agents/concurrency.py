"""Per-agent concurrency: at most ``max_concurrency`` runs of an agent at once, anywhere.

A run is an ``agents.run`` task or a workflow's step (``agents.workflow_step``,
which runs its step's agent): both take a slot of their agent, and wait for
one alike; a run's id is its task's.

Each agent has slots in Redis, shared by every worker process and host (the
layout and the scripts: ``aia_workers.agents.slot_scripts``). A run's message
asks for a slot before the run starts (``admit``): it takes a free one, or is
parked in the agent's line, scored by its submission time, and its message is
acknowledged: a parked run costs the broker nothing while it waits, no
retries, no countdowns. The run's task record stays ``queued``, and its event
stream says so: one ``progress`` event naming the agent and the runs ahead.
A run cancelled (or failed) while it waits leaves the line in the same step.

A slot is freed when its run ends, whatever the outcome (``release``), and
handed in the same step to the earliest parked run: the slot is reserved for
that run, so a newcomer cannot take it, and the caller sends the run's message
again (same task id, kwargs and send options, one turn later). The send
options carry what the message held besides its kwargs that the run needs to
go on from it: a workflow step's place in its canvas (its chain, its chord,
its group), without which the steps after it would never be sent.

A slot is a lease, renewed by the process running the run
(``aia_workers.agents.leases``); the sweep frees the slots of runs whose
process died, and hands them on. A handed-over run whose message never starts
it (lost with the process that was sending it) is handed its slot again after
``handover_seconds``, with a new turn; a late copy of the older turn is then
dropped, so a run never runs twice because of it.

Plain Redis, no Celery: the worker's adapter (``aia_workers.agents.tasking``)
sends the messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

import orjson
import redis

from aia_workers.agents.slot_scripts import (
    ADMIT_LUA,
    RELEASE_LUA,
    SETTLE_LUA,
    AdmitCall,
    ReleaseCall,
    RetireCall,
    SettleCall,
)
from aia_workers.backbone.events import StreamLimits
from aia_workers.backbone.keys import (
    AGENTS_ACTIVE_KEY,
    AGENTS_SWEEP_LOCK,
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
from aia_workers.settings import Settings

__all__ = [
    "TURN_HEADER",
    "Admission",
    "AgentSlots",
    "ConcurrencyPolicy",
    "Handover",
    "Send",
    "Sweeper",
    "celery_sender",
    "parse_handovers",
    "retire_call",
    "send_all",
    "settle_call",
]

log = logging.getLogger(__name__)

# The message header that carries a run's turn; a message without it is turn 0.
TURN_HEADER = "aia_agent_turn"

AdmitOutcome = Literal["go", "parked", "stale", "terminal", "unknown"]


@dataclass(frozen=True, slots=True)
class ConcurrencyPolicy:
    """How long a slot outlives its last renewal, and a handed-over slot its message.

    ``lease_seconds``: a running run's slot lapses this long after its process
    last renewed it (three times per lease). ``handover_seconds``: a run
    handed a slot that has not started after this long is sent again.
    """

    lease_seconds: float = 30.0
    handover_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ConcurrencyPolicy:
        return cls(
            lease_seconds=settings.agent_slot_lease_seconds,
            handover_seconds=settings.agent_handover_seconds,
        )

    @property
    def renew_seconds(self) -> float:
        return self.lease_seconds / 3

    @property
    def sweep_seconds(self) -> float:
        """How often the sweep runs: a lapsed slot waits at most this long past its lease."""
        return max(0.2, min(5.0, self.lease_seconds / 3))


@dataclass(frozen=True, slots=True)
class Handover:
    """A parked run handed a slot: its message, to send again with ``turn`` in its headers.

    ``options``: more of Celery's ``send_task`` options the message is sent
    with (JSON: a workflow step's ``chain``, ``chord``, ``group_id``, ...).
    """

    run_id: str
    turn: int
    name: str
    kwargs: Mapping[str, Any]
    queue: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Admission:
    """What a run's message gets: ``go`` (it holds a slot: run it), ``parked`` or
    ``stale`` (acknowledge it unrun), ``terminal`` (the run is over: let the
    task's own start skip it), ``unknown`` (no limit is stored: ask again with
    the agent's); and the other runs handed a slot meanwhile."""

    outcome: AdmitOutcome
    handed: tuple[Handover, ...] = ()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_handovers(flat: Sequence[Any]) -> tuple[Handover, ...]:
    """The (run id, turn, entry) triples a script replied with, as Handovers."""
    handed = []
    for i in range(0, len(flat) - 2, 3):
        run_id, turn, raw = _text(flat[i]), int(flat[i + 1]), flat[i + 2]
        if not raw:
            # Every parked run has an entry; one without cannot be sent, and its
            # slot lapses back after handover_seconds.
            log.error("agent run %s was handed a slot but has no message to send", run_id)
            continue
        entry = orjson.loads(raw)
        handed.append(
            Handover(
                run_id,
                turn,
                entry["name"],
                entry["kwargs"],
                entry["queue"],
                # An entry parked without options is a plain run's.
                entry.get("options") or {},
            )
        )
    return tuple(handed)


def _agent_keys(tenant: str, agent_id: str) -> dict[str, str]:
    return {
        "slots": agent_slots_key(tenant, agent_id),
        "parked": agent_parked_key(tenant, agent_id),
        "entries": agent_entries_key(tenant, agent_id),
        "turns": agent_turns_key(tenant, agent_id),
        "limit": agent_limit_key(tenant, agent_id),
        "active": AGENTS_ACTIVE_KEY,
    }


def settle_call(
    tenant: str, agent_id: str, *, cap: int | None, now: float, policy: ConcurrencyPolicy
) -> SettleCall:
    """The SETTLE_LUA call for one agent: a new ``cap`` (None: keep it), lapsed slots freed,
    free ones handed on. The API runs it on its own client when a limit changes."""
    return SettleCall(
        **_agent_keys(tenant, agent_id),
        member=agent_member(tenant, agent_id),
        cap="" if cap is None else cap,
        now=repr(now),
        handover_lapses_at=repr(now + policy.handover_seconds),
    )


def retire_call(tenant: str, agent_id: str, *, now: float) -> RetireCall:
    """The RETIRE_LUA call for a deleted agent; the API runs it on its own client."""
    return RetireCall(
        **_agent_keys(tenant, agent_id), member=agent_member(tenant, agent_id), now=repr(now)
    )


class AgentSlots:
    """Slots and lines of every agent, on one Redis client (blocking).

    ``limits`` are the task streams' (a parked run's event goes on its stream);
    None: the settings' defaults, not read from the environment.
    """

    def __init__(
        self, client: redis.Redis, policy: ConcurrencyPolicy, limits: StreamLimits | None = None
    ) -> None:
        self._client = client
        self.policy = policy
        self._limits = limits or StreamLimits.from_settings(Settings.model_construct())
        self._admit = client.register_script(ADMIT_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._settle = client.register_script(SETTLE_LUA)

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> AgentSlots:
        return cls(
            client, ConcurrencyPolicy.from_settings(settings), StreamLimits.from_settings(settings)
        )

    def admit(
        self,
        *,
        tenant: str,
        agent_id: str,
        run_id: str,
        cap: int | None,
        turn: int,
        name: str,
        kwargs: Mapping[str, Any],
        queue: str,
        options: Mapping[str, Any] | None = None,
    ) -> Admission:
        """Take a slot for ``run_id`` or park it (see Admission); ``cap`` None: the stored one.

        ``name``, ``kwargs``, ``queue`` and ``options`` (JSON-safe) are what
        sending the run's message again takes, should it be parked (Handover).

        The stored limit is the one the API stored when the agent was created or
        last changed (``settle``); the caller reads the agent's own only when none
        is stored (``unknown``: lost, or an agent older than that), so that a start
        costs no database read and a run's place in line never waits for one.
        """
        now = time.time()
        call = AdmitCall(
            **_agent_keys(tenant, agent_id),
            task=task_key(run_id),
            pending=pending_key(queue),
            events=events_key(run_id),
            recorder=RECORDER_STREAM,
            run_id=run_id,
            agent_id=agent_id,
            member=agent_member(tenant, agent_id),
            cap="" if cap is None else cap,
            now=repr(now),
            lapses_at=repr(now + self.policy.lease_seconds),
            handover_lapses_at=repr(now + self.policy.handover_seconds),
            turn=turn,
            entry=orjson.dumps(
                {"name": name, "kwargs": kwargs, "queue": queue, "options": options or {}}
            ).decode(),
            live_channel=channel(run_id),
            ttl=self._limits.ttl_seconds,
            events_kept=self._limits.events_per_task,
            recorder_maxlen=self._limits.recorder_maxlen,
        )
        keys, args = call.keys_and_args()
        reply = self._admit(keys=keys, args=args)
        return Admission(cast(AdmitOutcome, _text(reply[0])), parse_handovers(reply[1:]))

    def release(self, *, tenant: str, agent_id: str, run_id: str) -> tuple[Handover, ...]:
        """Free ``run_id``'s slot (or place in line); the runs handed a slot, to send again."""
        now = time.time()
        call = ReleaseCall(
            **_agent_keys(tenant, agent_id),
            run_id=run_id,
            member=agent_member(tenant, agent_id),
            now=repr(now),
            handover_lapses_at=repr(now + self.policy.handover_seconds),
        )
        keys, args = call.keys_and_args()
        return parse_handovers(self._release(keys=keys, args=args))

    def settle(self, tenant: str, agent_id: str, cap: int | None = None) -> tuple[Handover, ...]:
        """Free the agent's lapsed slots and hand free ones on; a new ``cap`` first, if given."""
        keys, args = settle_call(
            tenant, agent_id, cap=cap, now=time.time(), policy=self.policy
        ).keys_and_args()
        return parse_handovers(self._settle(keys=keys, args=args))

    def sweep(self, batch: int = 500) -> tuple[Handover, ...]:
        """Settle every agent with runs waiting or running; the runs handed a slot.

        One pipelined round trip per ``batch`` agents: a thousand active agents
        cost a few round trips per sweep, not a thousand.
        """
        members = list(self._client.sscan_iter(AGENTS_ACTIVE_KEY, count=batch))
        handed: list[Handover] = []
        for start in range(0, len(members), batch):
            pipe = self._client.pipeline(transaction=False)
            now = time.time()
            for member in members[start : start + batch]:
                tenant, agent_id = orjson.loads(member)
                call = settle_call(tenant, agent_id, cap=None, now=now, policy=self.policy)
                keys, args = call.keys_and_args()
                self._settle(keys=keys, args=args, client=pipe)
            for reply in pipe.execute():
                handed.extend(parse_handovers(reply))
        return tuple(handed)

    def renew(self, held: Iterable[tuple[str, str, str]]) -> int:
        """Push the lease of each (tenant, agent id, run id) slot; the number still held.

        XX: a slot freed meanwhile (its run released, or swept as lapsed) stays freed.
        """
        pipe = self._client.pipeline(transaction=False)
        lapses_at = time.time() + self.policy.lease_seconds
        count = 0
        for tenant, agent_id, run_id in held:
            pipe.zadd(agent_slots_key(tenant, agent_id), {run_id: lapses_at}, xx=True, ch=True)
            count += 1
        if not count:
            return 0
        pipe.execute()
        return count

    def claim_sweep(self, name: str) -> bool:
        """Take the sweep for one interval, unless another worker has it; True when taken."""
        interval_ms = max(1, int(self.policy.sweep_seconds * 1000))
        return bool(self._client.set(AGENTS_SWEEP_LOCK, name, nx=True, px=interval_ms))

    def waiting(self, tenant: str, agent_id: str) -> tuple[int, int]:
        """(runs holding a slot, runs not yet started) of the agent, now."""
        pipe = self._client.pipeline(transaction=False)
        pipe.zcard(agent_slots_key(tenant, agent_id))
        pipe.zcard(agent_parked_key(tenant, agent_id))
        held, parked = pipe.execute()
        return int(held), int(parked)


Send = Callable[[Handover], None]


class _SendsTasks(Protocol):
    def send_task(self, name: str, **options: Any) -> Any: ...


def celery_sender(app: _SendsTasks) -> Send:
    """Sends a handed-over run's message again through a Celery ``app``: same id,
    kwargs, queue and options, its turn in a header."""

    def send(handover: Handover) -> None:
        app.send_task(
            handover.name,
            kwargs=dict(handover.kwargs),
            task_id=handover.run_id,
            queue=handover.queue,
            headers={TURN_HEADER: handover.turn},
            # Not a child of whichever task is ending in this process as it is sent.
            add_to_parent=False,
            **handover.options,
        )

    return send


def send_all(handed: Iterable[Handover], send: Send) -> None:
    """Send each handed-over run again; one that cannot be sent is sent by a later sweep."""
    for handover in handed:
        try:
            send(handover)
        except Exception:
            # Its slot stays reserved for it and lapses after handover_seconds,
            # when the sweep hands it over again, with a new turn.
            log.exception("could not send agent run %s again", handover.run_id)


class Sweeper:
    """One thread per agents worker that settles every agent's slots every few seconds.

    Workers take turns: a sweep runs only in the worker holding the sweep lock
    for that interval, so many workers cost what one does.
    """

    def __init__(self, slots: AgentSlots, send: Send, *, name: str) -> None:
        self._slots = slots
        self._send = send
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aia-agent-slots", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def sweep_once(self) -> tuple[Handover, ...]:
        """Sweep now if no other worker did this interval; the runs handed a slot."""
        if not self._slots.claim_sweep(self._name):
            return ()
        handed = self._slots.sweep()
        send_all(handed, self._send)
        return handed

    def _run(self) -> None:
        while not self._stop.wait(self._slots.policy.sweep_seconds):
            try:
                self.sweep_once()
            except redis.RedisError as exc:
                log.warning("could not sweep the agents' slots: %s", exc)
            except Exception:
                # A dead sweeper leaves crashed runs' slots taken for good.
                log.exception("could not sweep the agents' slots")
