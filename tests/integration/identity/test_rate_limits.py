"""Rate limits counted per process and shared through Redis, and failed-authentication budgets."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from aia_api.identity.limits import AddressFailures, RateLimiter

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


def test_hits_during_a_flush_still_count_what_it_is_sending(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        limiter = RateLimiter(client, flush_seconds=3600)
        assert [limiter.hit("key:a", 5).remaining for _ in range(2)] == [4, 3]
        flushing = asyncio.create_task(limiter.flush())
        await asyncio.sleep(0)  # the flush has taken the two and awaits Redis
        assert not flushing.done()
        assert [limiter.hit("key:a", 5).remaining for _ in range(3)] == [2, 1, 0]
        await flushing
        assert limiter.hit("key:a", 5).exceeded
        await limiter.close()
        await client.aclose()

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


def test_a_rate_limit_window_lapses_in_redis(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        limiter = RateLimiter(client, flush_seconds=3600)
        for _ in range(3):
            limiter.hit("key:a", 5)
        await limiter.flush()
        [key] = await client.keys("aia:rl:key:a:*")
        assert await client.get(key) == "3"
        assert 0 < await client.ttl(key) <= 61
        await limiter.close()
        await client.aclose()

    asyncio.run(scenario())


def test_a_window_that_vanished_from_redis_gets_its_lifetime_again(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        limiter = RateLimiter(client, flush_seconds=3600)
        for subject in ("key:a", "key:b", "key:a"):
            limiter.hit(subject, 5)
        await limiter.flush()
        # As after a restart of a Redis that keeps nothing.
        keys = sorted(await client.keys("aia:rl:*"))
        await client.delete(*keys)
        limiter.hit("key:a", 5)
        await limiter.flush()
        limiter.hit("key:a", 5)
        limiter.hit("key:b", 5)
        await limiter.flush()
        assert [await client.get(key) for key in keys] == ["2", "1"]
        assert all([0 < await client.ttl(key) <= 61 for key in keys])
        await limiter.close()
        await client.aclose()

    asyncio.run(scenario())


def test_failed_authentications_are_charged_before_and_budgeted_exactly(redis_url: str) -> None:
    async def scenario() -> None:
        # Two clients stand for two API processes.
        one = aioredis.Redis.from_url(redis_url, decode_responses=True)
        two = aioredis.Redis.from_url(redis_url, decode_responses=True)
        first, second = AddressFailures(one, per_minute=5), AddressFailures(two, per_minute=5)
        burst = await asyncio.gather(
            *(limits.charge("203.0.113.9") for limits in [first, second] * 10)
        )
        assert sum(not c.refused for c in burst) == 5
        assert all(1 <= c.retry_after <= 61 for c in burst if c.refused)
        # Another address has a budget of its own.
        assert not (await first.charge("198.51.100.7")).refused
        await one.aclose()
        await two.aclose()

    asyncio.run(scenario())


def test_a_good_credential_takes_its_charge_back(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        failures = AddressFailures(client, per_minute=2)
        for _ in range(10):
            await failures.refund(await failures.charge("10.0.0.1"))
        assert not (await failures.charge("10.0.0.1")).refused
        assert not (await failures.charge("10.0.0.1")).refused
        assert (await failures.charge("10.0.0.1")).refused
        [key] = await client.keys("aia:authfail:10.0.0.1:*")
        assert 0 < await client.ttl(key) <= 61
        await client.aclose()

    asyncio.run(scenario())
