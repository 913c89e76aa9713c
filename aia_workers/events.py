"""Task events: the live record of every task, kept in Redis.

Each change of a task is one Lua call that, atomically and in one round trip,
updates the task's hash, assigns the next per-task sequence number, appends the
event to the task's capped replay stream, publishes it for live subscribers and
appends it to the recorder stream that feeds the database. Submit and
transition share the key layout and the event shape defined here; the API runs
them on an asyncio client and workers on a blocking one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from aia_workers.settings import Settings
from aia_workers.states import Event

__all__ = [
    "RECORDER_STREAM",
    "SUBMIT_LUA",
    "TRANSITION_LUA",
    "StreamLimits",
    "TransitionOutcome",
    "channel",
    "dumps",
    "events_key",
    "idempotency_key",
    "inflight_key",
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
class TransitionOutcome:
    """What a transition did: ``ok`` with the new sequence number, or why not."""

    outcome: str  # ok | terminal | ignored | missing
    seq: int | None
    status: str | None

    @classmethod
    def from_reply(cls, reply: Sequence[Any]) -> TransitionOutcome:
        kind = _text(reply[0])
        if kind == "ok":
            return cls("ok", int(reply[1]), _text(reply[2]))
        return cls(kind, None, _text(reply[1]) or None)


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
if ARGV[13] ~= '' then redis.call('LPUSH', KEYS[5], ARGV[13]) end
if ARGV[18] ~= '' then redis.call('PUBLISH', ARGV[17], ARGV[18]) end
return {'created', ARGV[1]}
"""

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
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local status = current
if ARGV[3] ~= '' then status = ARGV[3] end
redis.call('HSET', KEYS[1], 'status', status, 'updated_at', ARGV[4])
if #ARGV > 12 then redis.call('HSET', KEYS[1], unpack(ARGV, 13)) end
local data = ARGV[9]
if ARGV[2] == 'started' then
  local attempt = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('HSETNX', KEYS[1], 'started_at', ARGV[4])
  data = '{"attempt":' .. attempt .. '}'
end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[4])
  -- The tenant's count of tasks in flight, kept by submit.
  if redis.call('HGET', KEYS[1], 'counted') == '1' then
    redis.call('DECR', 'aia:inflight:' .. redis.call('HGET', KEYS[1], 'tenant'))
  end
end
local event = '{"task_id":"' .. ARGV[1] .. '","seq":' .. seq .. ',"event":"' .. ARGV[2]
  .. '","status":"' .. status .. '","time":' .. ARGV[4] .. ',"data":' .. data .. '}'
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '0-' .. seq, 'e', event)
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[8], event)
local meta = redis.call('HMGET', KEYS[1], 'tenant', 'type', 'queue')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'task', ARGV[1], 'tenant', meta[1],
  'type', meta[2], 'queue', meta[3], 'e', event)
return {'ok', seq, status}
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
) -> tuple[list[str], list[str | int | float]]:
    """KEYS and ARGV for TRANSITION_LUA.

    ``fields`` are extra hash fields to set (result, error, progress) and
    ``fallback`` the (tenant, type, queue) for a task that has no record yet.
    """
    status = event.status
    keys = [task_key(task_id), events_key(task_id), RECORDER_STREAM]
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
    ]
    for name, value in (fields or {}).items():
        args.extend((name, value))
    return keys, args
