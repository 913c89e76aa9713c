"""Concurrent Lua calls coalesced into pipelines keep their own answers and errors."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from aia_api.tasks.batching import ScriptBatcher

pytestmark = pytest.mark.integration

ECHO_INCR = """
if ARGV[1] == 'boom' then return redis.error_reply('boom on request') end
redis.call('INCR', KEYS[1])
return ARGV[1]
"""


def test_each_caller_gets_its_own_result(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        batcher = ScriptBatcher(client, ECHO_INCR, max_batch=64)
        results = await asyncio.gather(*(batcher(["n"], [f"v{i}"]) for i in range(300)))
        assert results == [f"v{i}" for i in range(300)]
        assert await client.get("n") == "300"
        await client.aclose()

    asyncio.run(scenario())


def test_one_failing_call_does_not_fail_its_batch(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        batcher = ScriptBatcher(client, ECHO_INCR)
        results = await asyncio.gather(
            batcher(["n"], ["a"]),
            batcher(["n"], ["boom"]),
            batcher(["n"], ["c"]),
            return_exceptions=True,
        )
        assert results[0] == "a"
        assert isinstance(results[1], ResponseError)
        assert "boom on request" in str(results[1])
        assert results[2] == "c"
        await client.aclose()

    asyncio.run(scenario())


def test_a_flushed_script_cache_is_reloaded(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        batcher = ScriptBatcher(client, ECHO_INCR)
        assert await batcher(["n"], ["first"]) == "first"
        await client.script_flush()
        assert await asyncio.gather(batcher(["n"], ["x"]), batcher(["n"], ["y"])) == ["x", "y"]
        await client.aclose()

    asyncio.run(scenario())


def test_an_unreachable_redis_fails_every_caller(redis_url: str) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        batcher = ScriptBatcher(client, ECHO_INCR)
        results = await asyncio.gather(
            *(batcher(["n"], [str(i)]) for i in range(3)), return_exceptions=True
        )
        assert all(
            isinstance(r, ConnectionError | OSError) or "connect" in str(r).lower() for r in results
        ), results
        await client.aclose()

    asyncio.run(scenario())
