"""Task events: the live record of every task, kept in Redis.

Each change of a task is one Lua call that, atomically and in one round trip,
updates the task's hash, assigns the next per-task sequence number, appends the
event to the task's capped replay stream, publishes it for live subscribers and
appends it to the recorder stream that feeds the database. Submit and
transition share the key layout and the event shape defined here; the API runs
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

from aia_workers.backbone.fairness import MAX_DEFER_SECONDS, FairShare, waiting_key
from aia_workers.backbone.states import Event
from aia_workers.settings import Settings

__all__ = [
    "DEAD_LETTERS_PER_TENANT",
    "RECORDER_STREAM",
    "SUBMIT_LUA",
    "TRANSITION_LUA",
    "DeadLetter",
    "Outcome",
    "PoisonPolicy",
    "StreamLimits",
    "TransitionOutcome",
    "channel",
    "dead_letter_entries_key",
    "dead_letters_key",
    "dumps",
    "events_key",
    "idempotency_key",
    "inflight_key",
    "pending_key",
    "quarantine_message",
    "submit_args",
    "task_key",
    "transition_args",
]

RECORDER_STREAM = "aia:recorder"


def task_key(task_id: str) -> str:
    return f"aia:task:{task_id}"


def events_key(task_id: str) -> str:
    return f"aia:task:{task_id}:events"


def channel(task_id: str) -> str:
    return f"aia:task:{task_id}:live"


def inflight_key(tenant: str) -> str:
    return f"aia:inflight:{tenant}"


def idempotency_key(tenant: str, key_digest: str) -> str:
    return f"aia:idem:{tenant}:{key_digest}"


def pending_key(queue: str) -> str:
    """Tasks the API queued on Redis and no worker has started, scored by the time
    each was queued (a task put back to wait for a slot: the time it is due)."""
    return f"aia:pending:{queue}"


def dead_letters_key(tenant: str) -> str:
    """The tenant's quarantined task ids, scored by the time each was quarantined."""
    return f"aia:deadletters:{tenant}"


def dead_letter_entries_key(tenant: str) -> str:
    """The tenant's dead letters by task id: JSON with what showing and replaying need."""
    return f"aia:deadletters:{tenant}:entries"


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


# The event JSON is assembled by concatenation: every interpolated value is a
# uuid, a number, an enum value or JSON that Python already encoded.
SUBMIT_LUA = """
if ARGV[12] ~= '0' then
  local prior = redis.call('GET', KEYS[4])
  if prior then
    local sep = string.find(prior, '|', 1, true)
    local prior_id = string.sub(prior, 1, sep - 1)
    if string.sub(prior, sep + 1) == ARGV[11] then return {'replay', prior_id} end
    return {'conflict', prior_id}
  end
end
local inflight = tonumber(redis.call('GET', KEYS[6]) or '0')
if inflight >= tonumber(ARGV[19]) then return {'busy', tostring(inflight)} end
redis.call('INCR', KEYS[6])
if ARGV[12] ~= '0' then
  redis.call('SET', KEYS[4], ARGV[1] .. '|' .. ARGV[11], 'EX', ARGV[12])
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'tenant', ARGV[2], 'type', ARGV[3],
  'queue', ARGV[4], 'status', 'queued', 'payload', ARGV[10], 'created_at', ARGV[5],
  'updated_at', ARGV[5], 'attempts', 0, 'seq', 1, 'priority', ARGV[14], 'eta', ARGV[15],
  'counted', 1)
redis.call('EXPIRE', KEYS[1], ARGV[6])
local event = '{"task_id":"' .. ARGV[1] .. '","seq":1,"event":"queued","status":"queued","time":'
  .. ARGV[5] .. ',"data":' .. ARGV[16] .. '}'
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '0-1', 'e', event)
redis.call('EXPIRE', KEYS[2], ARGV[6])
-- No PUBLISH: the id is new, so nobody can be subscribed yet; streams replay it.
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'task', ARGV[1], 'tenant', ARGV[2],
  'type', ARGV[3], 'queue', ARGV[4], 'e', event, 'payload', ARGV[10])
if ARGV[13] ~= '' then
  redis.call('LPUSH', KEYS[5], ARGV[13])
  -- Kept until the task starts, so a message lost with its worker can be
  -- queued again (aia_workers/backbone/rescue.py).
  redis.call('HSET', KEYS[1], 'message', ARGV[13], 'broker_key', KEYS[5])
  redis.call('ZADD', KEYS[7], ARGV[5], ARGV[1])
end
if ARGV[18] ~= '' then redis.call('PUBLISH', ARGV[17], ARGV[18]) end
return {'created', ARGV[1]}
"""

# KEYS: 1 the task's hash, 2 its event stream, 3 the recorder stream; with a
# poison policy also 4 the tenant's dead-letter index and 5 its dead-letter
# entries (dead_letters_key, dead_letter_entries_key).
# ARGV: 1 task id, 2 event, 3 new status ('' keeps it), 4 now (unix seconds),
# 5 ttl seconds, 6 events kept per task, 7 recorder stream length, 8 pub/sub
# channel, 9 event data JSON, 10-12 tenant, type and queue for a task with no
# record yet (10 is also the tenant of KEYS 4-5), 13 losses that quarantine
# ('0': never), 14 dead letters kept per tenant, 15-16 the quarantine message
# before and after the count; for a start under a fair share, 17 the tenant's
# slots on the queue (slots_key; '' for none), 18 their number, 19 when a slot
# taken now lapses, 20 the tenant's waiting tasks (waiting_key), 21 when an
# entry made there now lapses; 22... hash fields to set, as name/value pairs.
# (The tenant's in-flight counter and the slot to give back are named from the
# record: the callers that publish outcomes do not know the tenant.)
TRANSITION_LUA = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then
  if ARGV[2] ~= 'started' then return {'missing', ''} end
  -- Work that did not come through the API (beat, canvas) gets a record on first start.
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'tenant', ARGV[10], 'type', ARGV[11],
    'queue', ARGV[12], 'status', 'queued', 'created_at', ARGV[4], 'attempts', 0, 'seq', 0,
    'payload', 'null')
  current = 'queued'
end
if current == 'succeeded' or current == 'failed' or current == 'cancelled' then
  return {'terminal', current}
end
if ARGV[2] == 'progress' and current ~= 'running' then return {'ignored', current} end
if ARGV[2] == 'started' and ARGV[17] ~= '' and current ~= 'running' then
  -- Slots whose process stopped renewing them (killed, lost) have lapsed.
  redis.call('ZREMRANGEBYSCORE', ARGV[17], '-inf', '(' .. ARGV[4])
  local running = redis.call('ZCARD', ARGV[17])
  if running >= tonumber(ARGV[18]) and not redis.call('ZSCORE', ARGV[17], ARGV[1]) then
    -- Every slot of the tenant is taken: the task stays as it is, with no
    -- event, and the caller puts it back to wait.
    redis.call('ZREMRANGEBYSCORE', ARGV[20], '-inf', '(' .. ARGV[4])
    redis.call('ZADD', ARGV[20], ARGV[21], ARGV[1])
    redis.call('HINCRBY', KEYS[1], 'deferrals', 1)
    redis.call('HSET', KEYS[1], 'waiting', ARGV[20])
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    return {'deferred', current, running, redis.call('ZCARD', ARGV[20]),
      redis.call('HEXISTS', KEYS[1], 'message')}
  end
end
local name = ARGV[2]
local status = current
if ARGV[3] ~= '' then status = ARGV[3] end
local losses = 0
if name == 'started' and current == 'running' then
  -- Nothing recorded how the last run ended: its process died or was stopped.
  losses = redis.call('HINCRBY', KEYS[1], 'lost', 1)
  if #KEYS >= 5 and tonumber(ARGV[13]) > 0 and losses >= tonumber(ARGV[13]) then
    name = 'failed'
    status = 'failed'
  end
end
local quarantined = name ~= ARGV[2]
if ARGV[2] == 'started' and ARGV[17] ~= '' and not quarantined then
  -- A start that finds the task running (its worker was lost) takes the slot
  -- back even over the cap: put back, the task would stay running unrun.
  redis.call('ZADD', ARGV[17], ARGV[19], ARGV[1])
  redis.call('HSET', KEYS[1], 'slot', ARGV[17])
end
if current == 'queued' and status ~= 'queued' then
  -- Out of the pending index kept for aia_workers/backbone/rescue.py, named like the
  -- in-flight counter from the record.
  redis.call('ZREM', 'aia:pending:' .. redis.call('HGET', KEYS[1], 'queue'), ARGV[1])
  redis.call('HDEL', KEYS[1], 'message', 'broker_key', 'tag')
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'status', status, 'updated_at', ARGV[4])
if #ARGV > 21 then redis.call('HSET', KEYS[1], unpack(ARGV, 22)) end
local data = ARGV[9]
local err = ''
if quarantined then
  err = '{"type":"WorkerLost","message":' .. cjson.encode(ARGV[15] .. losses .. ARGV[16])
    .. ',"losses":' .. losses .. '}'
  redis.call('HSET', KEYS[1], 'error', err)
  data = '{"error":' .. err .. '}'
elseif name == 'started' then
  local attempt = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('HSETNX', KEYS[1], 'started_at', ARGV[4])
  data = '{"attempt":' .. attempt .. '}'
end
if status ~= current then
  -- No longer waiting for a slot, if it was.
  local waiting = redis.call('HGET', KEYS[1], 'waiting')
  if waiting then
    redis.call('ZREM', waiting, ARGV[1])
    redis.call('HDEL', KEYS[1], 'waiting')
  end
end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' or name == 'retrying' then
  -- A retry waits for its countdown outside any slot, and asks again when it starts.
  local slot = redis.call('HGET', KEYS[1], 'slot')
  if slot then
    redis.call('ZREM', slot, ARGV[1])
    redis.call('HDEL', KEYS[1], 'slot')
  end
end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[4])
  -- The tenant's count of tasks in flight, kept by submit.
  if redis.call('HGET', KEYS[1], 'counted') == '1' then
    redis.call('DECR', 'aia:inflight:' .. redis.call('HGET', KEYS[1], 'tenant'))
  end
end
local event = '{"task_id":"' .. ARGV[1] .. '","seq":' .. seq .. ',"event":"' .. name
  .. '","status":"' .. status .. '","time":' .. ARGV[4] .. ',"data":' .. data .. '}'
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '0-' .. seq, 'e', event)
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[8], event)
local meta = redis.call('HMGET', KEYS[1], 'tenant', 'type', 'queue', 'payload', 'attempts',
  'created_at', 'replay_of')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'task', ARGV[1], 'tenant', meta[1],
  'type', meta[2], 'queue', meta[3], 'e', event)
if not quarantined then return {'ok', seq, status} end
-- The dead letter keeps what a replay needs: the record expires after its ttl.
-- It is filed only when KEYS 4-5 are the record's tenant's, so that no other
-- tenant can ever see it.
if meta[1] == ARGV[10] then
  local entry = '{"id":' .. cjson.encode(ARGV[1]) .. ',"type":' .. cjson.encode(meta[2])
    .. ',"queue":' .. cjson.encode(meta[3]) .. ',"payload":' .. (meta[4] or 'null')
    .. ',"error":' .. err .. ',"losses":' .. losses .. ',"attempts":' .. (meta[5] or '0')
    .. ',"created_at":' .. (meta[6] or 'null') .. ',"dead_lettered_at":' .. ARGV[4]
    .. ',"replay_of":' .. (meta[7] and cjson.encode(meta[7]) or 'null') .. '}'
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
  redis.call('HSET', KEYS[5], ARGV[1], entry)
  local excess = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[14])
  if excess > 0 then
    local oldest = redis.call('ZRANGE', KEYS[4], 0, excess - 1)
    redis.call('ZREMRANGEBYRANK', KEYS[4], 0, excess - 1)
    redis.call('HDEL', KEYS[5], unpack(oldest))
  end
end
return {'quarantined', seq, status, losses}
"""


def submit_args(
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
) -> tuple[list[str], list[str | int | float]]:
    """KEYS and ARGV for SUBMIT_LUA.

    ``broker_message`` is the Celery message to LPUSH onto ``broker_key`` in the
    same atomic step, or ``""`` when the caller enqueues through another broker;
    ``sent_message`` is Celery's ``task-sent`` event for monitors, published on
    ``sent_channel``. A tenant with ``max_inflight`` tasks queued or running
    gets ``busy`` instead.
    """
    data = dumps({"type": type_name, "queue": queue, "priority": priority, "eta": eta})
    keys = [
        task_key(task_id),
        events_key(task_id),
        RECORDER_STREAM,
        idempotency_key or "aia:idem:none",
        broker_key or "aia:broker:none",
        inflight_key(tenant),
        pending_key(queue),
    ]
    args: list[str | int | float] = [
        task_id,
        tenant,
        type_name,
        queue,
        repr(now),
        limits.ttl_seconds,
        limits.events_per_task,
        limits.recorder_maxlen,
        channel(task_id),
        payload_json,
        fingerprint,
        limits.idempotency_ttl_seconds if idempotency_key else 0,
        broker_message,
        "" if priority is None else priority,
        eta or "",
        data,
        sent_channel,
        sent_message,
        max_inflight,
    ]
    return keys, args


def transition_args(
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
) -> tuple[list[str], list[str | int | float]]:
    """KEYS and ARGV for TRANSITION_LUA.

    ``fields`` are extra hash fields to set (result, error, progress) and
    ``fallback`` the (tenant, type, queue) for a task that has no record yet.
    A ``started`` event with a ``poison`` policy and a tenant in ``fallback``
    may quarantine the task instead (the ``quarantined`` outcome); with a
    ``fair`` share, a tenant and a queue in ``fallback``, it takes one of the
    tenant's slots on the queue or is ``deferred``.
    """
    status = event.status
    tenant, queue = fallback[0], fallback[2]
    keys = [task_key(task_id), events_key(task_id), RECORDER_STREAM]
    max_losses, kept, before, after = 0, 0, "", ""
    if event is Event.STARTED and poison is not None and tenant:
        keys += [dead_letters_key(tenant), dead_letter_entries_key(tenant)]
        max_losses, kept = poison.max_losses, poison.dead_letters_per_tenant
        before, after = _quarantine_message_parts(task_id)
    args: list[str | int | float] = [
        task_id,
        event.value,
        status.value if status else "",
        repr(now),
        limits.ttl_seconds,
        limits.events_per_task,
        limits.recorder_maxlen,
        channel(task_id),
        dumps(data or {}),
        *fallback,
        max_losses,
        kept,
        before,
        after,
        *_slot_args(event, tenant, queue, now, fair),
    ]
    for name, value in (fields or {}).items():
        args.extend((name, value))
    return keys, args


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
