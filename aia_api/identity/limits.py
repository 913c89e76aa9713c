"""Request rate limits and failed-authentication budgets, kept in Redis across API processes.

A rate limit is a fixed one-minute window per principal (or, on the public
login routes, per client address). Each process counts its own requests at
once and adds them to the shared count in Redis every few milliseconds, in one
pipeline for every subject it saw, so the hot path makes no round trip of its
own: within a process the limit is exact, across processes it may be passed
by what the others counted since their last flush. A flush gives a window's
key its lifetime once per process; after that it sends INCRBY alone.

Failed authentications are budgeted per client address, exactly, with a round
trip of their own: only credentials that are not already known pay it (see
``Authenticator``), and those would cost a database lookup anyway. Logins are
throttled in ``aia_api.identity.throttle``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["AddressFailures", "Charge", "Quota", "RateLimiter"]

log = logging.getLogger(__name__)

_WINDOW_SECONDS = 60


class Quota(NamedTuple):
    """Where a caller stands in the current window."""

    # A tuple: one is made for every request, and a frozen dataclass's
    # __init__ sets each field through object.__setattr__.
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
    number: int  # minutes since the epoch
    shared: int  # the count in Redis at the last flush, this process's included
    pending: int  # counted here since then
    ends: float
    # On its way to Redis in a flush not yet answered: still counted here,
    # or every hit during that round trip would see a budget too large.
    sending: int = 0
    # Whether this process gave the key in Redis its lifetime yet: once per
    # window is enough, so most flushes send INCRBY alone.
    expiring: bool = False


class RateLimiter:
    """Counts requests per subject per minute, shared through Redis."""

    def __init__(self, client: aioredis.Redis, *, flush_seconds: float = 0.05) -> None:
        self._redis = client
        self._flush_seconds = flush_seconds
        # By Redis key, so a window that just ended is still flushed.
        self._windows: dict[str, _Window] = {}
        # Each subject's latest window, so a hit spells no key.
        self._latest: dict[str, _Window] = {}
        self._flusher: asyncio.Task[None] | None = None

    def hit(self, subject: str, limit: int) -> Quota:
        now = time.time()
        window = int(now // _WINDOW_SECONDS)
        counted = self._latest.get(subject)
        if counted is None or counted.number != window:
            key = f"aia:rl:{subject}:{window}"
            counted = self._windows.get(key)
            if counted is None:
                counted = self._windows[key] = _Window(window, 0, 0, (window + 1) * _WINDOW_SECONDS)
            self._latest[subject] = counted
        counted.pending += 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())
        used = counted.shared + counted.sending + counted.pending
        return Quota(limit, limit - used, int(counted.ends - now) + 1)

    async def _flush_forever(self) -> None:
        while self._windows:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    async def flush(self) -> None:
        """Add what this process counted to Redis and learn the shared totals."""
        now = time.time()
        for key in [k for k, w in self._windows.items() if w.ends < now]:
            del self._windows[key]
        for subject in [s for s, w in self._latest.items() if w.ends < now]:
            del self._latest[subject]
        batch = [(key, w, w.pending) for key, w in self._windows.items() if w.pending]
        if not batch:
            return
        for _, counted, pending in batch:
            counted.pending -= pending  # hits from now on are counted afresh
            counted.sending += pending
        try:
            totals = await self._add(batch)
        except RedisError as exc:
            log.warning("could not share rate-limit counts: %s", exc)
            for _, counted, pending in batch:
                counted.sending -= pending
                counted.pending += pending
            return
        for (_, counted, pending), total in zip(batch, totals, strict=True):
            counted.sending -= pending
            counted.shared = int(total)
            counted.expiring = True

    async def _add(self, batch: list[tuple[str, _Window, int]]) -> list[int]:
        """INCRBY each key, and EXPIRE those this process has not yet; the new totals."""
        if len(batch) == 1 and batch[0][1].expiring:
            # One subject, as under a single busy caller: a plain command
            # costs this process less than a pipeline.
            key, _, pending = batch[0]
            totals = [int(await self._redis.incrby(key, pending))]
        else:
            pipe = self._redis.pipeline(transaction=False)
            for key, counted, pending in batch:
                pipe.incrby(key, pending)
                if not counted.expiring:
                    pipe.expire(key, _WINDOW_SECONDS + 1)
            replies = iter(await pipe.execute())
            totals = []
            for _, counted, _ in batch:
                totals.append(int(next(replies)))
                if not counted.expiring:
                    next(replies)
        # A key that vanished since its EXPIRE (a flushed or restarted Redis)
        # came back from INCRBY alone: it gets its lifetime again.
        for (key, counted, pending), total in zip(batch, totals, strict=True):
            if counted.expiring and total == pending:
                await self._redis.expire(key, _WINDOW_SECONDS + 1)
        return totals

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(BaseException):
                await self._flusher
        with contextlib.suppress(RedisError):
            await self.flush()


@dataclass(frozen=True, slots=True)
class Charge:
    """One attempt counted against an address: go on, or wait ``retry_after`` seconds."""

    address: str
    window: int
    retry_after: int

    @property
    def refused(self) -> bool:
        return self.retry_after > 0


class AddressFailures:
    """Failed authentications per client address per minute, shared through Redis.

    Unknown credentials cost a database lookup each, so the budget is charged
    before the lookup, in the same round trip that reads it: a parallel burst
    gets the budget and no more. A credential that proves valid is refunded,
    so only failures stay counted.
    """

    def __init__(self, client: aioredis.Redis, *, per_minute: int) -> None:
        self._redis = client
        self.per_minute = per_minute

    @staticmethod
    def _key(address: str, window: int) -> str:
        return f"aia:authfail:{address}:{window}"

    async def charge(self, address: str) -> Charge:
        """Count one attempt from ``address``; refused once the minute's budget is spent."""
        now = time.time()
        window = int(now // _WINDOW_SECONDS)
        key = self._key(address, window)
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, _WINDOW_SECONDS + 1)
        used, _ = await pipe.execute()
        wait = 0 if int(used) <= self.per_minute else int((window + 1) * _WINDOW_SECONDS - now) + 1
        return Charge(address, window, wait)

    async def refund(self, charge: Charge) -> None:
        """Take back ``charge``: the credential was good."""
        key = self._key(charge.address, charge.window)
        pipe = self._redis.pipeline(transaction=False)
        pipe.decr(key)
        # A key that lapsed meanwhile comes back as -1: let it lapse again.
        pipe.expire(key, _WINDOW_SECONDS + 1)
        await pipe.execute()
