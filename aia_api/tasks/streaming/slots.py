"""A cap on the streams one principal holds open, shared by every API process through Redis.

Each open stream holds a slot: a member of its principal's sorted set, scored
by the time its lease ends on Redis's clock (so the API machines' clocks need
not agree). The process that opened the stream renews the lease while it is
open and removes the slot when it closes. A process that dies renews nothing,
and its slots lapse one lease later: a crash never keeps a principal out for
longer than that.
"""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from aia_api.identity.principal import Principal
from aia_workers.errors import AiaError

__all__ = ["Slot", "StreamLimitReached", "StreamSlots"]

# TIME before a write is allowed from Redis 5 on (scripts replicate their effects).
_ACQUIRE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# XX: a slot removed meanwhile (its stream closed) is not brought back.
_RENEW = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', ms + lease, ARGV[i + 1])
  redis.call('PEXPIRE', key, lease)
end
return #KEYS
"""

# Keys per renewal call, so one call never holds Redis for long.
_RENEW_BATCH = 500


class StreamLimitReached(AiaError):
    """Raised when a principal already holds as many open streams as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this principal already has {limit} streams open (SSE and WebSocket, across "
            "every API process); close one, or follow several tasks on one WebSocket"
        )
        self.limit = limit


class Slot:
    """One open stream's place in its principal's set."""

    __slots__ = ("key", "member")

    def __init__(self, key: str, member: str) -> None:
        self.key = key
        self.member = member


class StreamSlots:
    """Acquires, renews and releases slots; ``renew`` is for the owner's periodic task."""

    def __init__(self, client: aioredis.Redis, *, limit: int, lease_seconds: float) -> None:
        self._redis = client
        self.limit = limit
        self.lease_seconds = lease_seconds
        self._lease_ms = max(1, int(lease_seconds * 1000))
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)

    @staticmethod
    def key(principal: Principal) -> str:
        return f"aia:streams:{principal.actor}"

    async def acquire(self, principal: Principal) -> Slot:
        """A slot for a new stream of ``principal``; StreamLimitReached when none is free."""
        slot = Slot(self.key(principal), uuid.uuid4().hex)
        taken = await self._acquire(keys=[slot.key], args=[slot.member, self.limit, self._lease_ms])
        if not int(taken):
            raise StreamLimitReached(self.limit)
        return slot

    async def renew(self, slots: list[Slot]) -> None:
        """Push back the end of every lease in ``slots``."""
        for start in range(0, len(slots), _RENEW_BATCH):
            batch = slots[start : start + _RENEW_BATCH]
            await self._renew(
                keys=[s.key for s in batch], args=[self._lease_ms, *(s.member for s in batch)]
            )

    async def release(self, slot: Slot) -> None:
        await self._redis.zrem(slot.key, slot.member)
