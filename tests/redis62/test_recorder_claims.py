"""A claimed recorder entry that was trimmed meanwhile, on Redis 6.2.

Redis 7 drops such an entry from the pending list and XAUTOCLAIM reports only
its id; 6.2 keeps it pending and answers it as nil, which redis-py hands over
as ``(None, None)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from aia_workers.backbone.keys import RECORDER_STREAM
from aia_workers.backbone.recorder import GROUP, Recorder
from aia_workers.db.migrate import upgrade
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.settings import Settings
from tests.support import record_submit

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine = make_engine(settings)
    yield engine
    engine.dispose()


def test_a_trimmed_entry_does_not_stall_the_claims(redis_url: str, engine: Engine) -> None:
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        for _ in range(3):
            record_submit(client, str(uuid.uuid4()))
        client.xgroup_create(RECORDER_STREAM, GROUP, id="0")
        # A recorder that read the entries and died; then the stream was trimmed past one.
        client.xreadgroup(GROUP, "dead", {RECORDER_STREAM: ">"}, count=100)
        oldest = client.xrange(RECORDER_STREAM, count=1)[0][0]
        client.xdel(RECORDER_STREAM, oldest)
        survivor = Recorder(client, make_sessionmaker(engine), consumer="alive", claim_idle_ms=0)
        assert survivor.claim_abandoned() == 2
        assert client.xpending(RECORDER_STREAM, GROUP)["pending"] == 0
