"""Stream slots in Redis: a cap per principal that a dead API process cannot keep filled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from aia_api.identity.principal import Principal
from aia_api.identity.roles import Role
from aia_api.tasks.streaming.slots import StreamLimitReached, StreamSlots

pytestmark = pytest.mark.integration

ALICE = Principal("key", "alice", "t1", Role.OPERATOR)
BOB = Principal("user", "bob", "t1", Role.VIEWER)


def _run(redis_url: str, scenario: Callable[[aioredis.Redis], Awaitable[None]]) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await scenario(client)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_a_principal_gets_at_most_its_slots_and_others_are_not_held_back(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> None:
        slots = StreamSlots(client, limit=2, lease_seconds=30)
        first = await slots.acquire(ALICE)
        await slots.acquire(ALICE)
        with pytest.raises(StreamLimitReached, match="already has 2 streams open"):
            await slots.acquire(ALICE)
        await slots.acquire(BOB)
        await slots.release(first)
        await slots.acquire(ALICE)
        with pytest.raises(StreamLimitReached):
            await slots.acquire(ALICE)
        # Another API process shares the count through Redis.
        with pytest.raises(StreamLimitReached):
            await StreamSlots(client, limit=2, lease_seconds=30).acquire(ALICE)
        assert await client.pttl(StreamSlots.key(ALICE)) > 0

    _run(redis_url, scenario)


def test_slots_nobody_renews_lapse_and_renewed_ones_do_not(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> None:
        lease = 1.0
        slots = StreamSlots(client, limit=1, lease_seconds=lease)
        kept = await slots.acquire(ALICE)
        await slots.acquire(BOB)  # its process "dies": never renewed
        started = time.monotonic()
        while time.monotonic() - started < 3 * lease:
            await slots.renew([kept])
            await asyncio.sleep(lease / 5)
        with pytest.raises(StreamLimitReached):
            await slots.acquire(ALICE)
        # Bob's lapsed: his principal has room again, without anyone releasing it.
        await slots.acquire(BOB)

    _run(redis_url, scenario)


def test_renewing_a_released_slot_does_not_bring_it_back(redis_url: str) -> None:
    async def scenario(client: aioredis.Redis) -> None:
        slots = StreamSlots(client, limit=1, lease_seconds=30)
        slot = await slots.acquire(ALICE)
        await slots.release(slot)
        await slots.renew([slot])
        await slots.acquire(ALICE)

    _run(redis_url, scenario)
