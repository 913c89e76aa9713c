"""Rate limits counted per process and shared through Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from aia_api.auth.limits import RateLimiter

pytestmark = pytest.mark.integration


def test_counts_are_exact_within_a_process_and_shared_across(redis_url: str) -> None:
    async def scenario() -> None:
        one = aioredis.Redis.from_url(redis_url)
        two = aioredis.Redis.from_url(redis_url)
        first, second = RateLimiter(one, flush_seconds=3600), RateLimiter(two, flush_seconds=3600)
        quotas = [first.hit("key:a", 5) for _ in range(6)]
        assert [q.remaining for q in quotas] == [4, 3, 2, 1, 0, -1]
        assert quotas[-1].exceeded
        await first.flush()
        # The other process learns the shared count at its own next flush.
        assert second.hit("key:a", 5).remaining == 4
        await second.flush()
        assert second.hit("key:a", 5).exceeded
        # Other subjects are untouched.
        assert first.hit("key:b", 5).remaining == 4
        await first.close()
        await second.close()
        await one.aclose()
        await two.aclose()

    asyncio.run(scenario())


def test_counts_survive_a_failed_flush(redis_url: str) -> None:
    async def scenario() -> None:
        down = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        limiter = RateLimiter(down, flush_seconds=3600)
        for _ in range(3):
            limiter.hit("key:a", 5)
        await limiter.flush()  # logged, not raised
        assert limiter.hit("key:a", 5).remaining == 1
        await limiter.close()
        await down.aclose()

    asyncio.run(scenario())
