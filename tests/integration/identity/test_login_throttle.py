"""The failed-login throttle's budgets and waits, on a real Redis (and, rerun, on 6.2)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from aia_api.identity.throttle import LoginAttempt, LoginPolicy, LoginThrottle

pytestmark = pytest.mark.integration

POLICY = LoginPolicy(
    per_account_and_address=3,
    per_account=5,
    per_address=8,
    first_delay_seconds=60,
    max_delay_seconds=200,
    window_seconds=300,
)


def _with_throttle(
    redis_url: str, scenario: Callable[[LoginThrottle, aioredis.Redis], Awaitable[None]]
) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await scenario(LoginThrottle(client, POLICY), client)
        finally:
            await client.aclose()

    asyncio.run(run())


async def _fail(throttle: LoginThrottle, times: int, user: str, address: str) -> list[int]:
    """``times`` failed attempts one after the other; each one's retry_after (0: let through)."""
    return [(await throttle.attempt(user, address)).retry_after for _ in range(times)]


async def _wait_passes(client: aioredis.Redis, attempt: LoginAttempt) -> None:
    """As if every wait the attempt's budgets set had run out."""
    for key in attempt.keys[:3]:
        if await client.exists(key):
            await client.hset(key, "next", 0)


def test_a_parallel_burst_gets_the_budget_and_no_more(redis_url: str) -> None:
    async def scenario(throttle: LoginThrottle, client: aioredis.Redis) -> None:
        burst = await asyncio.gather(*(throttle.attempt("alice", "10.0.0.1") for _ in range(20)))
        assert sum(not a.refused for a in burst) == POLICY.per_account_and_address
        assert all(59 <= a.retry_after <= 60 for a in burst if a.refused)

    _with_throttle(redis_url, scenario)


def test_each_wait_doubles_up_to_the_longest(redis_url: str) -> None:
    async def scenario(throttle: LoginThrottle, client: aioredis.Redis) -> None:
        assert await _fail(throttle, 3, "alice", "10.0.0.1") == [0, 0, 0]
        waits = []
        for _ in range(4):
            refused = await throttle.attempt("alice", "10.0.0.1")
            waits.append(refused.retry_after)
            await _wait_passes(client, refused)
            assert not (await throttle.attempt("alice", "10.0.0.1")).refused
        assert waits == [60, 120, 200, 200]

    _with_throttle(redis_url, scenario)


def test_a_strangers_failures_leave_the_owner_alone(redis_url: str) -> None:
    async def scenario(throttle: LoginThrottle, client: aioredis.Redis) -> None:
        assert await _fail(throttle, 3, "alice", "203.0.113.9") == [0, 0, 0]
        assert (await throttle.attempt("alice", "203.0.113.9")).refused
        # The owner, from an address of their own, is not slowed, and neither
        # is the stranger's address at another account.
        owner = await throttle.attempt("alice", "198.51.100.7")
        assert not owner.refused
        await throttle.succeeded(owner)
        assert not (await throttle.attempt("bob", "203.0.113.9")).refused

    _with_throttle(redis_url, scenario)


def test_a_guess_spread_over_addresses_spends_the_account_but_not_a_known_address(
    redis_url: str,
) -> None:
    async def scenario(throttle: LoginThrottle, client: aioredis.Redis) -> None:
        owner = await throttle.attempt("alice", "198.51.100.7")
        await throttle.succeeded(owner)
        spread = [await throttle.attempt("alice", f"203.0.113.{n}") for n in range(5)]
        assert not any(a.refused for a in spread)
        assert spread[-1].spent == ("account",)
        # A sixth address waits: the account's budget is spent.
        assert (await throttle.attempt("alice", "203.0.113.99")).refused
        # The owner's address is known: the account-wide budget is not its.
        again = await throttle.attempt("alice", "198.51.100.7")
        assert not again.refused
        assert again.known_address

    _with_throttle(redis_url, scenario)


def test_an_address_spraying_accounts_is_slowed(redis_url: str) -> None:
    async def scenario(throttle: LoginThrottle, client: aioredis.Redis) -> None:
        sprayed = [await throttle.attempt(f"user{n}", "203.0.113.9") for n in range(8)]
        assert not any(a.refused for a in sprayed)
        assert sprayed[-1].spent == ("address",)
        assert (await throttle.attempt("user99", "203.0.113.9")).refused
        assert not (await throttle.attempt("user99", "198.51.100.7")).refused

    _with_throttle(redis_url, scenario)


def test_a_login_forgives_its_own_failures_and_takes_back_its_charge(redis_url: str) -> None:
    async def scenario(throttle: LoginThrottle, client: aioredis.Redis) -> None:
        await _fail(throttle, 2, "alice", "10.0.0.1")
        login = await throttle.attempt("alice", "10.0.0.1")
        await throttle.succeeded(login)
        pair, account, address, known = login.keys
        assert not await client.exists(pair)
        # Only the two failures stay counted against the account and the address.
        assert await client.hget(account, "n") == "2"
        assert await client.hget(address, "n") == "2"
        assert 0 < await client.ttl(known) <= 30 * 86_400
        assert await _fail(throttle, 3, "alice", "10.0.0.1") == [0, 0, 0]

    _with_throttle(redis_url, scenario)


def test_a_count_lapses_a_window_after_its_wait(redis_url: str) -> None:
    async def scenario(throttle: LoginThrottle, client: aioredis.Redis) -> None:
        pair = (await throttle.attempt("alice", "10.0.0.1")).keys[0]
        assert 295 < await client.ttl(pair) <= 300
        await _fail(throttle, 2, "alice", "10.0.0.1")
        # The third failure spent the budget: the count outlives its 60 s wait.
        assert 355 < await client.ttl(pair) <= 360

    _with_throttle(redis_url, scenario)
