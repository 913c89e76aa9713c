"""Task events: the live record of every task, kept in Redis.

Each change of a task is one Lua call that, atomically and in one round trip,
updates the task's hash, assigns the next per-task sequence number, appends the
event to the task's capped replay stream, publishes it for live subscribers and
appends it to the recorder stream that feeds the database. This module turns
what a submit or a transition means (limits, poison policy, fair share) into
the calls of those scripts (``aia_workers.backbone.scripts``), over the key
layout of ``aia_workers.backbone.keys``, and reads their replies; the API runs
them on an asyncio client and workers on a blocking one.

A start may quarantine instead: a task whose worker process keeps dying is
failed in the same call and filed in its tenant's dead letters, from which the
API shows, replays or discards it (see PoisonPolicy and DeadLetter).

A start also takes one of its tenant's slots on the queue, or, when they are
all taken, changes nothing and answers ``deferred``: the task is put back to
wait, still queued (``aia_workers.backbone.fairness``). Its outcome, or a retry, gives
the slot back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import orjson

from aia_workers.backbone.fairness import MAX_DEFER_SECONDS, FairShare
from aia_workers.backbone.keys import (
    NO_BROKER_LIST,
    NO_IDEMPOTENCY_KEY,
    RECORDER_STREAM,
    channel,
    dead_letter_entries_key,
    dead_letters_key,
    events_key,
    inflight_key,
    pending_key,
    task_key,
    waiting_key,
)
from aia_workers.backbone.scripts import SubmitCall, TransitionCall
from aia_workers.backbone.states import Event
from aia_workers.settings import Settings

__all__ = [
    "DEAD_LETTERS_PER_TENANT",
    "DeadLetter",
    "Outcome",
    "PoisonPolicy",
    "StreamLimits",
    "TransitionOutcome",
    "dumps",
    "quarantine_message",
    "submit_args",
    "submit_call",
    "transition_args",
    "transition_call",
]


# Dead letters do not expire (the task's own record does, after task_ttl); a
# tenant keeps this many, the oldest dropped first.
DEAD_LETTERS_PER_TENANT = 10_000


def dumps(value: Any) -> str:
    """Compact JSON as stored in Redis and sent on the wire."""
    return orjson.dumps(value, default=str).decode()


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """How long and how much of a task's history Redis keeps."""

    ttl_seconds: int
    events_per_task: int
    recorder_maxlen: int
    idempotency_ttl_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamLimits:
        return cls(
            ttl_seconds=settings.task_ttl_seconds,
            events_per_task=settings.events_per_task,
            recorder_maxlen=settings.recorder_stream_maxlen,
            idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        )


@dataclass(frozen=True, slots=True)
class PoisonPolicy:
    """When a task that keeps losing its worker is quarantined instead of run again.

    A start that finds the task still ``running`` means its last run never
    reached an outcome (its process was killed, crashed or ran out of memory);
    the start that finds ``max_losses`` such losses fails the task and files it
    as a dead letter. ``max_losses`` 0 never quarantines.
    """

    max_losses: int
    dead_letters_per_tenant: int = DEAD_LETTERS_PER_TENANT

    @classmethod
    def from_settings(cls, settings: Settings) -> PoisonPolicy:
        return cls(max_losses=settings.poison_max_losses)


Outcome = Literal["ok", "quarantined", "deferred", "terminal", "ignored", "missing"]
_OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))


@dataclass(frozen=True, slots=True)
class TransitionOutcome:
    """What a transition did: ``ok`` with the new sequence number, or why not.

    ``quarantined``: a start found the task had lost its worker too often, so
    the task was failed and filed as a dead letter instead (``losses`` says how
    often); its body must not run.

    ``deferred``: a start found all of its tenant's slots on the queue taken
    (``running`` of them, with ``waiting`` tasks of the tenant put back); the
    task is unchanged and must be put back to wait, not run. ``direct`` when
    its record holds the Redis message the API queued (``rescue.py``'s), which
    the put-back message then replaces.
    """

    outcome: Outcome
    seq: int | None
    status: str | None
    losses: int | None = None
    running: int | None = None
    waiting: int | None = None
    direct: bool = False

    @classmethod
    def from_reply(cls, reply: Sequence[Any]) -> TransitionOutcome:
        kind = _text(reply[0])
        if kind not in _OUTCOMES:
            raise ValueError(f"unexpected reply from the transition script: {kind!r}")
        outcome = cast(Outcome, kind)
        if outcome == "ok":
            return cls(outcome, int(reply[1]), _text(reply[2]))
        if outcome == "quarantined":
            return cls(outcome, int(reply[1]), _text(reply[2]), int(reply[3]))
        if outcome == "deferred":
            return cls(
                outcome,
                None,
                _text(reply[1]),
                running=int(reply[2]),
                waiting=int(reply[3]),
                direct=int(reply[4]) == 1,
            )
        return cls(outcome, None, _text(reply[1]) or None)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A quarantined task as TRANSITION_LUA files it: what showing and replaying it need."""

    id: str
    type: str
    queue: str
    payload: Any
    reason: str
    losses: int
    attempts: int
    created_at: float | None  # unix seconds
    dead_lettered_at: float  # unix seconds
    replay_of: str | None

    @classmethod
    def from_json(cls, raw: str | bytes) -> DeadLetter:
        entry = orjson.loads(raw)
        return cls(
            id=entry["id"],
            type=entry["type"],
            queue=entry["queue"],
            payload=entry["payload"],
            reason=entry["error"]["message"],
            losses=int(entry["losses"]),
            attempts=int(entry["attempts"]),
            created_at=entry.get("created_at"),
            dead_lettered_at=float(entry["dead_lettered_at"]),
            replay_of=entry.get("replay_of"),
        )


def quarantine_message(task_id: str, losses: int) -> str:
    """Why a quarantined task failed, and what to do about it."""
    prefix, suffix = _quarantine_message_parts(task_id)
    return f"{prefix}{losses}{suffix}"


def _quarantine_message_parts(task_id: str) -> tuple[str, str]:
    # The script puts the count between the two, so the message states the
    # losses it found even when the setting changed while the task was lost.
    return (
        "the worker running this task was lost ",
        " times (killed, crashed or out of memory); it was quarantined and will not run "
        f"again by itself; replay it with POST /v1/dead-letters/{task_id}/replay",
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def submit_call(
    *,
    task_id: str,
    tenant: str,
    type_name: str,
    queue: str,
    now: float,
    limits: StreamLimits,
    payload_json: str,
    fingerprint: str,
    idempotency_key: str | None,
    broker_key: str,
    broker_message: str,
    priority: int | None,
    eta: str | None,
    sent_channel: str = "",
    sent_message: str = "",
    max_inflight: int = 1_000_000_000,
) -> SubmitCall:
    """The SUBMIT_LUA call that records ``task_id`` (see SubmitCall).

    ``idempotency_key`` is the tenant's key (``keys.idempotency_key``), None
    without one; ``broker_key`` the Redis list to LPUSH ``broker_message`` onto,
    ``""`` with no message.
    """
    data = dumps({"type": type_name, "queue": queue, "priority": priority, "eta": eta})
    return SubmitCall(
        task=task_key(task_id),
        events=events_key(task_id),
        recorder=RECORDER_STREAM,
        idempotency=idempotency_key or NO_IDEMPOTENCY_KEY,
        broker_list=broker_key or NO_BROKER_LIST,
        inflight=inflight_key(tenant),
        pending=pending_key(queue),
        task_id=task_id,
        tenant=tenant,
        type_name=type_name,
        queue=queue,
        now=repr(now),
        ttl=limits.ttl_seconds,
        events_kept=limits.events_per_task,
        recorder_maxlen=limits.recorder_maxlen,
        payload=payload_json,
        fingerprint=fingerprint,
        idempotency_ttl=limits.idempotency_ttl_seconds if idempotency_key else 0,
        broker_message=broker_message,
        priority="" if priority is None else priority,
        eta=eta or "",
        event_data=data,
        sent_channel=sent_channel,
        sent_message=sent_message,
        max_inflight=max_inflight,
    )


def submit_args(**kwargs: Any) -> tuple[list[str], list[str | int | float]]:
    """KEYS and ARGV for SUBMIT_LUA, from submit_call's arguments."""
    return submit_call(**kwargs).keys_and_args()


def transition_call(
    *,
    task_id: str,
    event: Event,
    now: float,
    limits: StreamLimits,
    data: Mapping[str, Any] | None = None,
    fields: Mapping[str, str] | None = None,
    fallback: tuple[str, str, str] = ("", "", ""),
    poison: PoisonPolicy | None = None,
    fair: FairShare | None = None,
) -> TransitionCall:
    """The TRANSITION_LUA call that applies ``event`` to ``task_id`` (see TransitionCall).

    ``fields`` are extra hash fields to set (result, error, progress) and
    ``fallback`` the record's (tenant, type, queue) when the caller knows them:
    they make the record of a task that has none yet, and name its tenant's
    in-flight count and its queue's pending index in KEYS. A ``started``
    event with a ``poison`` policy and a tenant in ``fallback`` may quarantine
    the task instead (the ``quarantined`` outcome); with a ``fair`` share, a
    tenant and a queue in ``fallback``, it takes one of the tenant's slots on
    the queue or is ``deferred``.
    """
    status = event.status
    tenant, type_name, queue = fallback
    dead_letters = dead_letter_entries = before = after = ""
    max_losses, kept = 0, 0
    if event is Event.STARTED and poison is not None and tenant:
        dead_letters, dead_letter_entries = (
            dead_letters_key(tenant),
            dead_letter_entries_key(tenant),
        )
        max_losses, kept = poison.max_losses, poison.dead_letters_per_tenant
        before, after = _quarantine_message_parts(task_id)
    slots, cap, slot_lapses_at, waiting, waiting_lapses_at = _slot_args(
        event, tenant, queue, now, fair
    )
    return TransitionCall(
        task=task_key(task_id),
        events=events_key(task_id),
        recorder=RECORDER_STREAM,
        inflight=inflight_key(tenant) if tenant else "",
        pending=pending_key(queue) if queue else "",
        dead_letters=dead_letters,
        dead_letter_entries=dead_letter_entries,
        slots=slots,
        waiting=waiting,
        task_id=task_id,
        event_name=event.value,
        new_status=status.value if status else "",
        now=repr(now),
        ttl=limits.ttl_seconds,
        events_kept=limits.events_per_task,
        recorder_maxlen=limits.recorder_maxlen,
        live_channel=channel(task_id),
        event_data=dumps(data or {}),
        tenant=tenant,
        type_name=type_name,
        queue=queue,
        max_losses=max_losses,
        dead_letters_kept=kept,
        quarantine_before=before,
        quarantine_after=after,
        slot_cap=cap,
        slot_lapses_at=slot_lapses_at,
        waiting_lapses_at=waiting_lapses_at,
        hash_fields=tuple((fields or {}).items()),
    )


def transition_args(**kwargs: Any) -> tuple[list[str], list[str | int | float]]:
    """KEYS and ARGV for TRANSITION_LUA, from transition_call's arguments."""
    return transition_call(**kwargs).keys_and_args()


def _slot_args(
    event: Event, tenant: str, queue: str, now: float, fair: FairShare | None
) -> tuple[str, int, str, str, str]:
    slot = fair.slot_for(queue, tenant) if fair is not None else None
    if event is not Event.STARTED or fair is None or slot is None:
        return ("", 0, "", "", "")
    # A waiting entry outlives the longest wait, so that the tenant's backlog
    # counts every task that will ask again.
    return (
        slot,
        fair.cap_for(queue),
        repr(now + fair.lease_seconds),
        waiting_key(queue, tenant),
        repr(now + 2 * MAX_DEFER_SECONDS),
    )
