"""Login-failure counting, lockouts and rate-limit windows on Redis 6.2."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from aia_api.auth.limits import LockoutPolicy, Lockouts, RateLimiter

pytestmark = pytest.mark.integration

POLICY = LockoutPolicy(max_failures=3, window_seconds=300, lock_seconds=600)


def _with_lockouts(
    redis_url: str, scenario: Callable[[Lockouts, aioredis.Redis], Awaitable[None]]
) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await scenario(Lockouts(client, POLICY), client)
        finally:
            await client.aclose()

    asyncio.run(run())


def test_an_account_locks_after_max_failures(redis_url: str) -> None:
    async def scenario(lockouts: Lockouts, client: aioredis.Redis) -> None:
        assert [await lockouts.failed("user:a") for _ in range(3)] == [False, False, True]
        assert 590 < await lockouts.locked_for("user:a", "addr:127.0.0.1") <= 600
        # The count made way for the lock; nobody else is locked by it.
        assert not await client.exists("aia:fail:user:a")
        assert await lockouts.locked_for("user:b", "addr:127.0.0.1") == 0

    _with_lockouts(redis_url, scenario)


def test_an_address_has_a_threshold_of_its_own(redis_url: str) -> None:
    async def scenario(lockouts: Lockouts, client: aioredis.Redis) -> None:
        outcomes = [await lockouts.failed("addr:10.0.0.1", max_failures=5) for _ in range(5)]
        assert outcomes == [False] * 4 + [True]
        assert await lockouts.locked_for("addr:10.0.0.1") > 0

    _with_lockouts(redis_url, scenario)


def test_the_window_starts_at_the_first_failure(redis_url: str) -> None:
    async def scenario(lockouts: Lockouts, client: aioredis.Redis) -> None:
        await lockouts.failed("user:a")
        assert 295 < await client.ttl("aia:fail:user:a") <= 300
        # As if most of the window had passed: later failures must not extend it.
        await client.expire("aia:fail:user:a", 20)
        await lockouts.failed("user:a")
        assert 0 < await client.ttl("aia:fail:user:a") <= 20
        assert await client.get("aia:fail:user:a") == "2"

    _with_lockouts(redis_url, scenario)


def test_a_count_without_expiry_is_given_one(redis_url: str) -> None:
    async def scenario(lockouts: Lockouts, client: aioredis.Redis) -> None:
        await client.set("aia:fail:user:a", 1)
        assert not await lockouts.failed("user:a")
        assert 295 < await client.ttl("aia:fail:user:a") <= 300

    _with_lockouts(redis_url, scenario)


def test_a_successful_login_starts_the_count_afresh(redis_url: str) -> None:
    async def scenario(lockouts: Lockouts, client: aioredis.Redis) -> None:
        await lockouts.failed("user:a")
        await lockouts.failed("user:a")
        await lockouts.succeeded("user:a")
        assert [await lockouts.failed("user:a") for _ in range(2)] == [False, False]
        assert await lockouts.locked_for("user:a") == 0

    _with_lockouts(redis_url, scenario)


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
