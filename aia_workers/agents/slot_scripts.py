"""The Lua scripts of per-agent concurrency, with their KEYS and ARGV by name.

Each agent has, in Redis (names in ``aia_workers.backbone.keys``):

- ``slots``: runs holding one of its slots, scored by when the slot lapses: a
  running run (its process renews the lease) or a run handed a slot whose
  message is on its way (the slot lapses if the message never starts it);
- ``parked``: runs that have not started, scored by submission time: waiting
  for a slot, or handed one (then in ``slots`` too) and not yet started;
- ``entries``: what sending each parked run's message again needs (JSON);
- ``turns``: each parked or running run's turn, bumped every time its message
  is sent again, so that a stale copy of an older turn is told apart and dropped;
- ``limit``: the agent's max_concurrency, stored by the API when the agent is
  created or its limit changed (or by a start that found none, from the
  database), kept while the agent lives.

A parked run's record names its line (``agent_line``: the JSON array of its
agent's slots, parked, entries and turns), so that the transition that moves
it on (``TRANSITION_LUA``: cancelled, failed, or started some other way) takes
it out of the line at once, wherever it is; a run that gets a slot here drops
the name. Parking a run announces it on the run's own event stream: a
``progress`` event that leaves its status as it is, saying which agent it
waits for and how many runs are ahead of it.

Every script first drops the lapsed slots (``purge``): a running run's slot
is simply freed (its process died; the broker delivers its message again and
it queues like a newcomer), while a handed-over run that never started stays
parked, first in line, and is handed a slot again with a new turn. Then
(``hand_over``) the free slots go to the earliest parked runs, skipping and
forgetting the ones cancelled meanwhile; each handed run's entry and new turn
come back for the caller to send it again. Redis 6.2 is enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aia_workers.backbone.keys import task_key
from aia_workers.backbone.scripts import AGENT_LINE_FIELD, ScriptCall, lua_prelude, lua_set
from aia_workers.backbone.states import TERMINAL, Event

__all__ = [
    "ADMIT_LUA",
    "RELEASE_LUA",
    "RETIRE_LUA",
    "SETTLE_LUA",
    "AdmitCall",
    "ReleaseCall",
    "RetireCall",
    "SettleCall",
]

# Shared by every script: locals ``slots``, ``parked``, ``entries``, ``turns``,
# ``limit``, ``now`` and ``handover_lapses_at`` come from the prelude. The run
# records are named from their prefix: which runs to read is known only here.
_SETTLE = (
    lua_set("terminal", frozenset(s.value for s in TERMINAL))
    + f"local task_prefix = '{task_key('')}'\n"
    + """
local function purge()
  local lapsed = redis.call('ZRANGEBYSCORE', slots, '-inf', '(' .. now)
  for _, run in ipairs(lapsed) do
    redis.call('ZREM', slots, run)
    -- Still parked: handed a slot, never started; it stays first in line.
    if not redis.call('ZSCORE', parked, run) then redis.call('HDEL', turns, run) end
  end
end

local function hand_over(self_id, self_lapses_at)
  local free = tonumber(redis.call('GET', limit) or '1') - redis.call('ZCARD', slots)
  local handed = {}
  local go = false
  local i = 0
  while free > 0 do
    local batch = redis.call('ZRANGE', parked, i, i)
    if #batch == 0 then break end
    local run = batch[1]
    if redis.call('ZSCORE', slots, run) then
      i = i + 1
    else
      local status = redis.call('HGET', task_prefix .. run, 'status')
      if status and terminal[status] then
        -- Cancelled while it waited: it leaves the line.
        redis.call('ZREM', parked, run)
        redis.call('HDEL', entries, run)
        redis.call('HDEL', turns, run)
      else
        if run == self_id then
          redis.call('ZADD', slots, self_lapses_at, run)
          redis.call('ZREM', parked, run)
          redis.call('HDEL', entries, run)
          go = true
        else
          redis.call('ZADD', slots, handover_lapses_at, run)
          local next_turn = redis.call('HINCRBY', turns, run, 1)
          table.insert(handed, run)
          table.insert(handed, next_turn)
          table.insert(handed, redis.call('HGET', entries, run) or '')
          i = i + 1
        end
        free = free - 1
      end
    end
  end
  return go, handed
end

local function forget_if_idle()
  if redis.call('ZCARD', slots) == 0 and redis.call('ZCARD', parked) == 0 then
    redis.call('SREM', active, member)
  end
end
"""
)

_AGENT_KEYS = ("slots", "parked", "entries", "turns", "limit", "active")


@dataclass(slots=True)
class _AgentCall(ScriptCall):
    """The keys of one agent's slots and line, first in every script's KEYS."""

    KEYS: ClassVar[tuple[str, ...]] = _AGENT_KEYS

    slots: str
    parked: str
    entries: str
    turns: str
    limit: str
    active: str


@dataclass(slots=True)
class AdmitCall(_AgentCall):
    """ADMIT_LUA: a run's message arrived; start it, park it, or drop a stale copy.

    Replies ``{outcome, handed...}``: ``go`` (the run holds a slot now, until
    ``lapses_at`` unless renewed), ``parked`` (it waits in line; its message may
    be acknowledged), ``stale`` (a copy of an older ``turn``: acknowledge it and
    do nothing), ``terminal`` (the run was cancelled or finished: whatever it
    held is given back) or ``unknown`` (``cap`` is ``""``, for the stored limit,
    and none is stored: call again with the agent's, stored unless another was
    meanwhile). ``handed`` are triples
    (run id, turn, entry) of other runs handed a slot, to send again.
    A parked run leaves the queue's pending index, so that the rescuer does not
    queue its acknowledged message again. A run parked by this call (not one
    delivered again) gets one event on its stream, ``events`` and
    ``live_channel``, and the ``recorder``'s: a ``progress`` event in the
    status it has, whose data says the ``agent_id`` and the runs ahead of it.
    """

    KEYS: ClassVar[tuple[str, ...]] = (*_AGENT_KEYS, "task", "pending", "events", "recorder")

    task: str
    pending: str
    events: str
    recorder: str
    run_id: str
    agent_id: str
    member: str
    cap: int | str
    now: str  # unix seconds, repr of a float
    lapses_at: str  # unix seconds
    handover_lapses_at: str  # unix seconds
    turn: int
    entry: str  # JSON
    live_channel: str
    ttl: int  # seconds
    events_kept: int
    recorder_maxlen: int


ADMIT_LUA = (
    lua_prelude(AdmitCall)
    + _SETTLE
    + f"local line_field = '{AGENT_LINE_FIELD}'\n"
    + f"local waiting_event = '{Event.PROGRESS.value}'\n"
    + """
-- The run's own event, as TRANSITION_LUA writes one (TaskEvent's shape), with its
-- status as it is: waiting for a slot does not move a run.
local function announce_waiting(status)
  local ahead = redis.call('ZRANK', parked, run_id)
  local runs = ' runs'
  if ahead == 1 then runs = ' run' end
  local message = 'waiting for a slot of agent ' .. agent_id .. ': ' .. ahead .. runs .. ' ahead'
  local data = '{"message":' .. cjson.encode(message) .. ',"waiting":{"agent_id":'
    .. cjson.encode(agent_id) .. ',"ahead":' .. ahead .. '}}'
  local seq = redis.call('HINCRBY', task, 'seq', 1)
  redis.call('HSET', task, 'updated_at', now)
  local event = '{"task_id":"' .. run_id .. '","seq":' .. seq .. ',"event":"' .. waiting_event
    .. '","status":"' .. status .. '","time":' .. now .. ',"data":' .. data .. '}'
  redis.call('XADD', events, 'MAXLEN', '~', events_kept, '0-' .. seq, 'e', event)
  redis.call('EXPIRE', events, ttl)
  redis.call('EXPIRE', task, ttl)
  redis.call('PUBLISH', live_channel, event)
  local meta = redis.call('HMGET', task, 'tenant', 'type', 'queue')
  redis.call('XADD', recorder, 'MAXLEN', '~', recorder_maxlen, '*', 'task', run_id,
    'tenant', meta[1], 'type', meta[2], 'queue', meta[3], 'e', event)
end

local status = redis.call('HGET', task, 'status')
if status and terminal[status] then
  redis.call('ZREM', slots, run_id)
  redis.call('ZREM', parked, run_id)
  redis.call('HDEL', entries, run_id)
  redis.call('HDEL', turns, run_id)
  purge()
  local _, handed = hand_over('', '')
  forget_if_idle()
  return {'terminal', unpack(handed)}
end
local known = redis.call('HGET', turns, run_id)
if known and tonumber(known) ~= tonumber(turn) then return {'stale'} end
if cap ~= '' then
  -- Only where none is stored: a change the API stored meanwhile is newer
  -- than what the caller read.
  redis.call('SET', limit, cap, 'NX')
elseif redis.call('EXISTS', limit) == 0 then
  -- The agent's first run here: the caller reads its limit and asks again.
  return {'unknown'}
end
redis.call('SADD', active, member)
purge()
if redis.call('ZSCORE', slots, run_id) then
  -- Handed a slot (this is its message), or running and delivered again
  -- after its worker was lost.
  redis.call('ZADD', slots, lapses_at, run_id)
  redis.call('ZREM', parked, run_id)
  redis.call('HDEL', entries, run_id)
  redis.call('HSET', turns, run_id, turn)
  redis.call('HDEL', task, line_field)
  local _, handed = hand_over('', '')
  return {'go', unpack(handed)}
end
local parks = not redis.call('ZSCORE', parked, run_id)
if parks then
  local submitted = redis.call('HGET', task, 'created_at') or now
  redis.call('ZADD', parked, submitted, run_id)
  redis.call('HSET', entries, run_id, entry)
  redis.call('HSET', turns, run_id, turn)
  -- Its message is acknowledged once parked: nothing for the rescuer to queue again.
  redis.call('ZREM', pending, run_id)
  redis.call('HDEL', task, 'message', 'broker_key', 'tag')
  -- No record, no line to name: a hash made here would have no status and no expiry.
  if status then
    redis.call('HSET', task, line_field, cjson.encode({slots, parked, entries, turns}))
  end
end
local go, handed = hand_over(run_id, lapses_at)
if go then
  redis.call('HDEL', task, line_field)
  return {'go', unpack(handed)}
end
if parks and status then announce_waiting(status) end
return {'parked', unpack(handed)}
"""
)


@dataclass(slots=True)
class ReleaseCall(_AgentCall):
    """RELEASE_LUA: a run ended (or left to retry); free its slot and hand slots on.

    Replies with the (run id, turn, entry) triples of the runs handed a slot.
    """

    run_id: str
    member: str
    now: str  # unix seconds, repr of a float
    handover_lapses_at: str  # unix seconds


RELEASE_LUA = (
    lua_prelude(ReleaseCall)
    + _SETTLE
    + """
redis.call('ZREM', slots, run_id)
redis.call('ZREM', parked, run_id)
redis.call('HDEL', entries, run_id)
redis.call('HDEL', turns, run_id)
purge()
local _, handed = hand_over('', '')
forget_if_idle()
return handed
"""
)


@dataclass(slots=True)
class SettleCall(_AgentCall):
    """SETTLE_LUA: free lapsed slots and hand free ones on (the sweep, a new limit).

    ``cap`` ``""`` keeps the stored limit. Replies with the (run id, turn, entry)
    triples of the runs handed a slot.
    """

    member: str
    cap: int | str
    now: str  # unix seconds, repr of a float
    handover_lapses_at: str  # unix seconds


SETTLE_LUA = (
    lua_prelude(SettleCall)
    + _SETTLE
    + """
if cap ~= '' then redis.call('SET', limit, cap) end
purge()
local _, handed = hand_over('', '')
forget_if_idle()
return handed
"""
)


@dataclass(slots=True)
class RetireCall(_AgentCall):
    """RETIRE_LUA: the agent was deleted; forget its limit and, when idle, the agent.

    Replies with the runs still in its line (waiting, or handed a slot and not
    started), for the caller to fail: each leaves the line as its record ends.
    With no limit stored, a message of the agent's that comes later asks for
    it (``unknown``), finds the agent gone and fails its run at once, holding
    nothing; its running runs give their slots back as they end, the last one
    forgetting the agent.
    """

    member: str
    now: str  # unix seconds, repr of a float


RETIRE_LUA = (
    lua_prelude(RetireCall)
    + _SETTLE
    + """
redis.call('DEL', limit)
purge()
forget_if_idle()
return redis.call('ZRANGE', parked, 0, -1)
"""
)
