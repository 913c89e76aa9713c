"""The API's pub/sub fan-out: one connection, bounded buffers, slow clients dropped."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from aia_api.tasks.hub import Hub, Subscription, SubscriptionLost

pytestmark = pytest.mark.integration


def _event(task: str, seq: int) -> str:
    return json.dumps({"task_id": task, "seq": seq, "event": "progress", "status": "running"})


async def _clients(redis_url: str) -> tuple[aioredis.Redis, aioredis.Redis]:
    return (
        aioredis.Redis.from_url(redis_url, decode_responses=True),
        aioredis.Redis.from_url(redis_url, decode_responses=True),
    )


def test_many_subscribers_share_one_connection(redis_url: str) -> None:
    async def scenario() -> None:
        hub_client, publisher = await _clients(redis_url)
        hub = Hub(hub_client)
        subs = [Subscription(16) for _ in range(200)]
        for i, sub in enumerate(subs):
            await hub.attach(sub, f"ch:{i % 20}")
        db = str(hub_client.connection_pool.connection_kwargs.get("db", 0))
        clients = [c for c in await publisher.client_list() if c.get("db") == db]
        assert sum(1 for c in clients if int(c.get("sub", 0)) > 0) == 1
        assert hub.channel_count == 20
        for i in range(20):
            await publisher.publish(f"ch:{i}", _event(f"t{i}", 1))
        for i, sub in enumerate(subs):
            batch = await sub.get(wait_seconds=5)
            assert [e["task_id"] for e in batch] == [f"t{i % 20}"]
        for sub in subs:
            await hub.detach(sub)
        assert hub.channel_count == 0
        await hub.close()
        await hub_client.aclose()
        await publisher.aclose()

    asyncio.run(scenario())


def test_a_slow_subscriber_is_dropped_and_the_rest_keep_going(redis_url: str) -> None:
    async def scenario() -> None:
        hub_client, publisher = await _clients(redis_url)
        hub = Hub(hub_client)
        slow, fast = Subscription(4), Subscription(64)
        await hub.attach(slow, "ch")
        await hub.attach(fast, "ch")
        received: list[int] = []
        for seq in range(1, 11):
            await publisher.publish("ch", _event("t", seq))
            received += [e["seq"] for e in await fast.get(wait_seconds=5)]
        assert received == list(range(1, 11))
        with pytest.raises(SubscriptionLost, match="fell more than 4 events behind"):
            await slow.get(wait_seconds=1)
        assert slow.channels == set()
        await hub.close()
        await hub_client.aclose()
        await publisher.aclose()

    asyncio.run(scenario())


def test_subscribers_learn_when_redis_goes_away(redis_url: str) -> None:
    async def scenario() -> None:
        hub_client, admin = await _clients(redis_url)
        hub = Hub(hub_client)
        sub = Subscription(8)
        await hub.attach(sub, "ch")
        db = str(hub_client.connection_pool.connection_kwargs.get("db", 0))
        ours = [c for c in await admin.client_list() if c.get("db") == db and int(c["sub"]) > 0]
        assert len(ours) == 1
        await admin.client_kill_filter(_id=ours[0]["id"])
        with pytest.raises(SubscriptionLost, match="lost its connection"):
            await sub.get(wait_seconds=5)
        # The hub reconnects for the next subscriber.
        again = Subscription(8)
        await hub.attach(again, "ch")
        await admin.publish("ch", _event("t", 1))
        assert (await again.get(wait_seconds=5))[0]["seq"] == 1
        await hub.close()
        await hub_client.aclose()
        await admin.aclose()

    asyncio.run(scenario())


def test_a_burst_of_first_subscribers_opens_one_connection(redis_url: str) -> None:
    async def scenario() -> None:
        hub_client, publisher = await _clients(redis_url)
        hub = Hub(hub_client)
        subs = [Subscription(8) for _ in range(300)]
        await asyncio.gather(*(hub.attach(sub, f"ch:{i}") for i, sub in enumerate(subs)))
        db = str(hub_client.connection_pool.connection_kwargs.get("db", 0))
        clients = [c for c in await publisher.client_list() if c.get("db") == db]
        assert [int(c["sub"]) for c in clients if int(c.get("sub", 0)) > 0] == [300]
        for i in range(300):
            await publisher.publish(f"ch:{i}", _event(f"t{i}", 1))
        for i, sub in enumerate(subs):
            assert [e["task_id"] for e in await sub.get(wait_seconds=5)] == [f"t{i}"]
        await hub.close()
        await hub_client.aclose()
        await publisher.aclose()

    asyncio.run(scenario())
