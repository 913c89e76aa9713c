"""The Lua scripts of the task backbone, with their KEYS and ARGV by name.

Each script is the body of one atomic step on a task's live record (submit,
transition). Its arguments are a dataclass whose fields are the
script's KEYS and ARGV in order; the script opens with one ``local`` per
field, rendered from the same dataclass, so Python and Lua both use names
and cannot disagree on a position. Every key a script touches is declared
in KEYS; a key it can only name from the record (the tenant's in-flight
count when the caller does not know the tenant) is declared by every caller
that does know it. The terminal statuses are rendered from
``states.TERMINAL``. The scripts run on Redis 6.2 and later.

The event JSON is assembled by concatenation: every interpolated value is a
uuid, a number, an enum value or JSON that Python already encoded. Its shape
is ``aia_workers.backbone.event.TaskEvent``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, ClassVar

from aia_workers.backbone.keys import inflight_key, pending_key
from aia_workers.backbone.states import TERMINAL

__all__ = [
    "AGENT_LINE_FIELD",
    "DEFER_LUA",
    "RENEW_SLOT_LUA",
    "RESCUE_LUA",
    "SUBMIT_LUA",
    "TRACEPARENT_FIELD",
    "TRANSITION_LUA",
    "DeferCall",
    "RenewSlotCall",
    "RescueCall",
    "ScriptCall",
    "SubmitCall",
    "TransitionCall",
    "lua_prelude",
    "lua_set",
]

Arg = str | int | float

# The field of a task's record that names the agent's line it is parked in
# (aia_workers/agents/slot_scripts.py): a JSON array of that agent's slots,
# parked, entries and turns keys.
AGENT_LINE_FIELD = "agent_line"
# The field of a task's record, and of its recorder stream entries, that holds
# the W3C traceparent of the run that ended it (set with the ending event's
# hash fields when tracing is on), so the webhooks it causes join its trace.
TRACEPARENT_FIELD = "traceparent"


@dataclass(slots=True)
class ScriptCall:
    """The arguments of one call of a script: fields named in ``KEYS`` go to KEYS, in
    that order, and every other field goes to ARGV, in declaration order.

    Not frozen: a frozen dataclass sets each of some twenty fields through
    ``object.__setattr__``, which tripled the cost of building a submit.
    """

    KEYS: ClassVar[tuple[str, ...]] = ()

    def keys(self) -> list[str]:
        return list(_getters(type(self))[0](self))

    def args(self) -> list[Arg]:
        return list(_getters(type(self))[1](self))

    def keys_and_args(self) -> tuple[list[str], list[Arg]]:
        return self.keys(), self.args()


def _argv_names(cls: type[ScriptCall]) -> tuple[str, ...]:
    named = (f for f in fields(cls) if not f.metadata.get("rest"))
    return tuple(f.name for f in named if f.name not in cls.KEYS)


def _getters(cls: type[ScriptCall]) -> tuple[attrgetter[Any], attrgetter[Any]]:
    # Made once per class: the submit path builds a call per request.
    getters = _GETTERS.get(cls)
    if getters is None:
        getters = _GETTERS[cls] = (attrgetter(*cls.KEYS), attrgetter(*_argv_names(cls)))
    return getters


_GETTERS: dict[type[ScriptCall], tuple[attrgetter[Any], attrgetter[Any]]] = {}


def _prelude(cls: type[ScriptCall]) -> str:
    """One Lua local per KEYS and ARGV entry of ``cls``, named as its fields are."""
    lines = [f"local {name} = KEYS[{i}]" for i, name in enumerate(cls.KEYS, 1)]
    lines += [f"local {name} = ARGV[{i}]" for i, name in enumerate(_argv_names(cls), 1)]
    return "\n".join(lines) + "\n"


def _lua_set(name: str, members: frozenset[str]) -> str:
    entries = ", ".join(f"['{m}'] = true" for m in sorted(members))
    return f"local {name} = {{{entries}}}\n"


def lua_prelude(cls: type[ScriptCall]) -> str:
    """The opening of a script whose arguments are ``cls``: one local per KEYS and ARGV entry."""
    return _prelude(cls)


def lua_set(name: str, members: frozenset[str]) -> str:
    """A Lua table ``name`` holding ``members`` as keys, for membership tests."""
    return _lua_set(name, members)


@dataclass(slots=True)
class SubmitCall(ScriptCall):
    """SUBMIT_LUA: record a new task, count it in flight, enqueue it, announce it.

    ``idempotency_ttl`` 0 means the request has no Idempotency-Key (then
    ``idempotency`` is a stand-in). ``broker_message`` is the Celery message to
    LPUSH onto ``broker_list`` in the same step, ``""`` when the caller
    enqueues through another broker; ``sent_message`` is Celery's
    ``task-sent`` event for monitors, published on ``sent_channel`` (``""``:
    none). A tenant with ``max_inflight`` tasks queued or running gets
    ``busy`` instead. ``event_data`` is the queued event's data, JSON.
    """

    KEYS: ClassVar[tuple[str, ...]] = (
        "task",
        "events",
        "recorder",
        "idempotency",
        "broker_list",
        "inflight",
        "pending",
    )

    # KEYS
    task: str
    events: str
    recorder: str
    idempotency: str
    broker_list: str
    inflight: str
    pending: str
    # ARGV
    task_id: str
    tenant: str
    type_name: str
    queue: str
    now: str  # unix seconds, repr of a float
    ttl: int  # seconds
    events_kept: int
    recorder_maxlen: int
    payload: str  # JSON
    fingerprint: str
    idempotency_ttl: int  # seconds
    broker_message: str
    priority: int | str  # "" for none
    eta: str  # ISO 8601, "" for none
    event_data: str  # JSON
    sent_channel: str
    sent_message: str
    max_inflight: int


SUBMIT_LUA = (
    _prelude(SubmitCall)
    + """
if idempotency_ttl ~= '0' then
  local prior = redis.call('GET', idempotency)
  if prior then
    local sep = string.find(prior, '|', 1, true)
    local prior_id = string.sub(prior, 1, sep - 1)
    if string.sub(prior, sep + 1) == fingerprint then return {'replay', prior_id} end
    return {'conflict', prior_id}
  end
end
local in_flight = tonumber(redis.call('GET', inflight) or '0')
if in_flight >= tonumber(max_inflight) then return {'busy', tostring(in_flight)} end
redis.call('INCR', inflight)
if idempotency_ttl ~= '0' then
  redis.call('SET', idempotency, task_id .. '|' .. fingerprint, 'EX', idempotency_ttl)
end
redis.call('HSET', task, 'id', task_id, 'tenant', tenant, 'type', type_name,
  'queue', queue, 'status', 'queued', 'payload', payload, 'created_at', now,
  'updated_at', now, 'attempts', 0, 'seq', 1, 'priority', priority, 'eta', eta,
  'counted', 1)
redis.call('EXPIRE', task, ttl)
local event = '{"task_id":"' .. task_id .. '","seq":1,"event":"queued","status":"queued","time":'
  .. now .. ',"data":' .. event_data .. '}'
redis.call('XADD', events, 'MAXLEN', '~', events_kept, '0-1', 'e', event)
redis.call('EXPIRE', events, ttl)
-- No PUBLISH: the id is new, so nobody can be subscribed yet; streams replay it.
redis.call('XADD', recorder, 'MAXLEN', '~', recorder_maxlen, '*', 'task', task_id,
  'tenant', tenant, 'type', type_name, 'queue', queue, 'e', event, 'payload', payload)
if broker_message ~= '' then
  redis.call('LPUSH', broker_list, broker_message)
  -- Kept until the task starts, so a message lost with its worker can be
  -- queued again (aia_workers/backbone/rescue.py).
  redis.call('HSET', task, 'message', broker_message, 'broker_key', broker_list)
  redis.call('ZADD', pending, now, task_id)
end
if sent_message ~= '' then redis.call('PUBLISH', sent_channel, sent_message) end
return {'created', task_id}
"""
)


@dataclass(slots=True)
class TransitionCall(ScriptCall):
    """TRANSITION_LUA: apply one event to a task's record and announce it.

    ``new_status`` ``""`` keeps the status (progress). ``tenant``,
    ``type_name`` and ``queue`` are the record's when the caller knows them
    (a start always does: they make the record of work that did not come
    through the API); ``inflight`` and ``pending`` are then named from them,
    and ``""`` otherwise, for the script to name from the record.

    A start with ``max_losses`` above 0 and the tenant's ``dead_letters`` and
    ``dead_letter_entries`` quarantines a task whose worker was lost that
    often, keeping ``dead_letters_kept`` per tenant; its message is
    ``quarantine_before``, the count, ``quarantine_after``. A start with the
    tenant's ``slots`` on the queue (``""``: no fair share) takes one of
    ``slot_cap`` slots, lapsing at ``slot_lapses_at``, or files the task in
    ``waiting`` (lapsing at ``waiting_lapses_at``) and answers ``deferred``.
    ``hash_fields`` are extra hash fields to set (result, error, progress).
    A task that leaves its status also leaves the agent's line its record
    names (``AGENT_LINE_FIELD``), if any.
    """

    KEYS: ClassVar[tuple[str, ...]] = (
        "task",
        "events",
        "recorder",
        "inflight",
        "pending",
        "dead_letters",
        "dead_letter_entries",
        "slots",
        "waiting",
    )

    # KEYS
    task: str
    events: str
    recorder: str
    inflight: str
    pending: str
    dead_letters: str
    dead_letter_entries: str
    slots: str
    waiting: str
    # ARGV
    task_id: str
    event_name: str
    new_status: str
    now: str  # unix seconds, repr of a float
    ttl: int  # seconds
    events_kept: int
    recorder_maxlen: int
    live_channel: str
    event_data: str  # JSON
    tenant: str
    type_name: str
    queue: str
    max_losses: int
    dead_letters_kept: int
    quarantine_before: str
    quarantine_after: str
    slot_cap: int
    slot_lapses_at: str  # unix seconds
    waiting_lapses_at: str  # unix seconds
    # ARGV after the named ones: hash fields to set, as name/value pairs.
    hash_fields: tuple[tuple[str, str], ...] = field(default=(), metadata={"rest": True})

    def args(self) -> list[Arg]:
        args = ScriptCall.args(self)
        for name, value in self.hash_fields:
            args.extend((name, value))
        return args


_TRANSITION_FIXED_ARGV = len(_argv_names(TransitionCall))

TRANSITION_LUA = (
    _prelude(TransitionCall)
    + _lua_set("terminal", frozenset(s.value for s in TERMINAL))
    + f"local inflight_prefix = '{inflight_key('')}'\n"
    + f"local pending_prefix = '{pending_key('')}'\n"
    + f"local line_field = '{AGENT_LINE_FIELD}'\n"
    + f"local trace_field = '{TRACEPARENT_FIELD}'\n"
    + """
local current = redis.call('HGET', task, 'status')
if not current then
  if event_name ~= 'started' then return {'missing', ''} end
  -- Work that did not come through the API (beat, canvas) gets a record on first start.
  redis.call('HSET', task, 'id', task_id, 'tenant', tenant, 'type', type_name,
    'queue', queue, 'status', 'queued', 'created_at', now, 'attempts', 0, 'seq', 0,
    'payload', 'null')
  current = 'queued'
end
if terminal[current] then
  return {'terminal', current}
end
if event_name == 'progress' and current ~= 'running' then return {'ignored', current} end
if event_name == 'started' and slots ~= '' and current ~= 'running' then
  -- Slots whose process stopped renewing them (killed, lost) have lapsed.
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', '(' .. now)
  local running = redis.call('ZCARD', slots)
  if running >= tonumber(slot_cap) and not redis.call('ZSCORE', slots, task_id) then
    -- Every slot of the tenant is taken: the task stays as it is, with no
    -- event, and the caller puts it back to wait.
    redis.call('ZREMRANGEBYSCORE', waiting, '-inf', '(' .. now)
    redis.call('ZADD', waiting, waiting_lapses_at, task_id)
    redis.call('HINCRBY', task, 'deferrals', 1)
    redis.call('HSET', task, 'waiting', waiting)
    redis.call('EXPIRE', task, ttl)
    return {'deferred', current, running, redis.call('ZCARD', waiting),
      redis.call('HEXISTS', task, 'message')}
  end
end
local name = event_name
local status = current
if new_status ~= '' then status = new_status end
local losses = 0
if name == 'started' and current == 'running' then
  -- Nothing recorded how the last run ended: its process died or was stopped.
  losses = redis.call('HINCRBY', task, 'lost', 1)
  if tonumber(max_losses) > 0 and losses >= tonumber(max_losses) then
    name = 'failed'
    status = 'failed'
  end
end
local quarantined = name ~= event_name
if event_name == 'started' and slots ~= '' and not quarantined then
  -- A start that finds the task running (its worker was lost) takes the slot
  -- back even over the cap: put back, the task would stay running unrun.
  redis.call('ZADD', slots, slot_lapses_at, task_id)
  redis.call('HSET', task, 'slot', slots)
end
if current == 'queued' and status ~= 'queued' then
  -- Out of the pending index kept for aia_workers/backbone/rescue.py; the
  -- record's queue names it when the caller did not.
  local index = pending_prefix .. redis.call('HGET', task, 'queue')
  if pending ~= index then pending = index end
  redis.call('ZREM', pending, task_id)
  redis.call('HDEL', task, 'message', 'broker_key', 'tag')
end
local seq = redis.call('HINCRBY', task, 'seq', 1)
redis.call('HSET', task, 'status', status, 'updated_at', now)
if #ARGV > """
    + str(_TRANSITION_FIXED_ARGV)
    + " then redis.call('HSET', task, unpack(ARGV, "
    + str(_TRANSITION_FIXED_ARGV + 1)
    + """)) end
local data = event_data
local err = ''
if quarantined then
  err = '{"type":"WorkerLost","message":'
    .. cjson.encode(quarantine_before .. losses .. quarantine_after)
    .. ',"losses":' .. losses .. '}'
  redis.call('HSET', task, 'error', err)
  data = '{"error":' .. err .. '}'
elseif name == 'started' then
  local attempt = redis.call('HINCRBY', task, 'attempts', 1)
  redis.call('HSETNX', task, 'started_at', now)
  -- This attempt's start, for the runtime that the worker metrics measure.
  redis.call('HSET', task, 'attempt_started_at', now)
  data = '{"attempt":' .. attempt .. '}'
end
if status ~= current then
  -- No longer waiting for a slot, if it was.
  local waited = redis.call('HGET', task, 'waiting')
  if waited then
    redis.call('ZREM', waited, task_id)
    redis.call('HDEL', task, 'waiting')
  end
  -- Nor in its agent's line, wherever it was in it: a run cancelled or failed
  -- there is never handed a slot, and one handed a slot on its way gives it
  -- back, for the next settle to hand on.
  local line = redis.call('HGET', task, line_field)
  if line then
    local agent = cjson.decode(line)
    redis.call('ZREM', agent[1], task_id)
    redis.call('ZREM', agent[2], task_id)
    redis.call('HDEL', agent[3], task_id)
    redis.call('HDEL', agent[4], task_id)
    redis.call('HDEL', task, line_field)
  end
end
if terminal[status] or name == 'retrying' then
  -- A retry waits for its countdown outside any slot, and asks again when it starts.
  local slot = redis.call('HGET', task, 'slot')
  if slot then
    redis.call('ZREM', slot, task_id)
    redis.call('HDEL', task, 'slot')
  end
end
if terminal[status] then
  redis.call('HSET', task, 'finished_at', now)
  -- The tenant's count of tasks in flight, kept by submit; the record's
  -- tenant names it when the caller did not.
  if redis.call('HGET', task, 'counted') == '1' then
    local counter = inflight_prefix .. redis.call('HGET', task, 'tenant')
    if inflight ~= counter then inflight = counter end
    redis.call('DECR', inflight)
  end
end
local event = '{"task_id":"' .. task_id .. '","seq":' .. seq .. ',"event":"' .. name
  .. '","status":"' .. status .. '","time":' .. now .. ',"data":' .. data .. '}'
redis.call('XADD', events, 'MAXLEN', '~', events_kept, '0-' .. seq, 'e', event)
redis.call('EXPIRE', events, ttl)
redis.call('EXPIRE', task, ttl)
redis.call('PUBLISH', live_channel, event)
local meta = redis.call('HMGET', task, 'tenant', 'type', 'queue', 'payload', 'attempts',
  'created_at', 'replay_of', 'attempt_started_at', trace_field)
-- created and started let a reader of the stream alone time the queue wait and
-- the run (aia_workers.telemetry): entries of one task may reach different readers.
if meta[9] then
  redis.call('XADD', recorder, 'MAXLEN', '~', recorder_maxlen, '*', 'task', task_id,
    'tenant', meta[1], 'type', meta[2], 'queue', meta[3], 'e', event,
    'created', meta[6] or '', 'started', meta[8] or '', trace_field, meta[9])
else
  redis.call('XADD', recorder, 'MAXLEN', '~', recorder_maxlen, '*', 'task', task_id,
    'tenant', meta[1], 'type', meta[2], 'queue', meta[3], 'e', event,
    'created', meta[6] or '', 'started', meta[8] or '')
end
if not quarantined then return {'ok', seq, status} end
-- The dead letter keeps what a replay needs: the record expires after its ttl.
-- It is filed only when the dead-letter keys are the record's tenant's, so
-- that no other tenant can ever see it.
if meta[1] == tenant then
  local entry = '{"id":' .. cjson.encode(task_id) .. ',"type":' .. cjson.encode(meta[2])
    .. ',"queue":' .. cjson.encode(meta[3]) .. ',"payload":' .. (meta[4] or 'null')
    .. ',"error":' .. err .. ',"losses":' .. losses .. ',"attempts":' .. (meta[5] or '0')
    .. ',"created_at":' .. (meta[6] or 'null') .. ',"dead_lettered_at":' .. now
    .. ',"replay_of":' .. (meta[7] and cjson.encode(meta[7]) or 'null') .. '}'
  redis.call('ZADD', dead_letters, now, task_id)
  redis.call('HSET', dead_letter_entries, task_id, entry)
  local excess = redis.call('ZCARD', dead_letters) - tonumber(dead_letters_kept)
  if excess > 0 then
    local oldest = redis.call('ZRANGE', dead_letters, 0, excess - 1)
    redis.call('ZREMRANGEBYRANK', dead_letters, 0, excess - 1)
    redis.call('HDEL', dead_letter_entries, unpack(oldest))
  end
end
return {'quarantined', seq, status, losses}
"""
)


@dataclass(slots=True)
class RescueCall(ScriptCall):
    """RESCUE_LUA: queue again a task whose message a lost worker took (see backbone.rescue).

    Only while the task is still queued, no worker holds its message (under the
    task id, or the tag of the message that put it back to wait) and the message
    is not in ``task_list`` already; 1 when it was queued again. LPOS is Redis 6.0.6.
    """

    KEYS: ClassVar[tuple[str, ...]] = ("task", "unacked", "task_list", "pending")

    task: str
    unacked: str  # kombu's hash of the messages workers hold
    task_list: str
    pending: str
    task_id: str
    now: str  # unix seconds, repr of a float


RESCUE_LUA = (
    _prelude(RescueCall)
    + """
if redis.call('HGET', task, 'status') ~= 'queued' then
  redis.call('ZREM', pending, task_id)
  return 0
end
local tag = redis.call('HGET', task, 'tag') or task_id
if redis.call('HEXISTS', unacked, tag) == 1 then return 0 end
local message = redis.call('HGET', task, 'message')
if not message then
  redis.call('ZREM', pending, task_id)
  return 0
end
if redis.call('LPOS', task_list, message) then return 0 end
redis.call('RPUSH', task_list, message)
redis.call('ZADD', pending, now, task_id)
return 1
"""
)


@dataclass(slots=True)
class DeferCall(ScriptCall):
    """DEFER_LUA: put a task back to wait for a slot, replacing the message that brought it.

    Acknowledges the old message (by its tag, or the task id) in kombu's unacked
    hash and index; unless the task was cancelled or started meanwhile, pushes
    ``new_message`` onto the list its record names and keeps it as the message
    to rescue; 0 when it did not. The list is the one key not in KEYS: it is
    the record's (``broker_key``, a queue's list or one of kombu's priority
    siblings), and reading it anywhere but in this step could push the message
    onto another list than the one the task was acknowledged from.
    """

    KEYS: ClassVar[tuple[str, ...]] = ("task", "unacked", "unacked_index", "pending")

    task: str
    unacked: str
    unacked_index: str
    pending: str
    task_id: str
    new_message: str
    new_tag: str
    due: str  # unix seconds, repr of a float


DEFER_LUA = (
    _prelude(DeferCall)
    + """
local tag = redis.call('HGET', task, 'tag') or task_id
redis.call('HDEL', unacked, tag)
redis.call('ZREM', unacked_index, tag)
local list = redis.call('HGET', task, 'broker_key')
-- Cancelled or started meanwhile: the old message is acknowledged, and that is all.
if redis.call('HGET', task, 'status') ~= 'queued' or not list then return 0 end
-- At the back of the list: the messages already queued are read first.
redis.call('LPUSH', list, new_message)
redis.call('HSET', task, 'message', new_message, 'tag', new_tag)
redis.call('ZADD', pending, due, task_id)
return 1
"""
)


@dataclass(slots=True)
class RenewSlotCall(ScriptCall):
    """RENEW_SLOT_LUA: push a running task's slot lease to ``lapses_at``; 1 when renewed.

    Only while the record still names that slot: an outcome gives it back, and
    a renewal racing the outcome must not take it again.
    """

    KEYS: ClassVar[tuple[str, ...]] = ("task", "slots")

    task: str
    slots: str
    task_id: str
    lapses_at: str  # unix seconds, repr of a float


RENEW_SLOT_LUA = (
    _prelude(RenewSlotCall)
    + """
if redis.call('HGET', task, 'slot') ~= slots then return 0 end
redis.call('ZADD', slots, lapses_at, task_id)
return 1
"""
)
