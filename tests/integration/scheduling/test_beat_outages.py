"""Beat rides out outages: nothing it can reach is no reason to stop, and it resumes by itself."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

import celeryconfig
from aia_workers.db.migrate import upgrade
from aia_workers.scheduling.beat import CeleryLauncher, DatabaseScheduler
from aia_workers.scheduling.contracts import SystemSchedule
from aia_workers.scheduling.runner import RetryLaterError
from aia_workers.settings import Settings
from tests.support import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def app(redis_url: str) -> Iterator[Celery]:
    app = Celery("beat-outage-test", broker=redis_url, set_as_current=False)
    app.conf.task_queues = celeryconfig.task_queues
    yield app
    app.close()


def test_beat_waits_for_its_database_and_then_fires(
    app: Celery, redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'later.db'}",
        redis_url=redis_url,
        data_home=tmp_path,
        beat_retry_seconds=0.5,
        beat_poll_seconds=0.25,
        system_schedules=[
            SystemSchedule(name="ping", task="aia.test.ping", queue="outage", interval_seconds=1)
        ],
    )
    beat = DatabaseScheduler(app, settings=settings)
    try:
        # No schedules table yet (as while PostgreSQL is down): a pause, not a crash.
        assert beat.tick() == 0.5
        assert beat.tick() == 0.5
        upgrade(settings)
        assert beat.tick() == 0.25
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 10
        while client.llen("outage") == 0 and time.monotonic() < deadline:
            beat.tick()
            time.sleep(0.25)
        (message,) = client.lrange("outage", 0, -1)
        assert json.loads(message)["headers"]["task"] == "aia.test.ping"
    finally:
        beat.close()


def test_a_submit_while_redis_is_down_is_retried_later(app: Celery, tmp_path: Path) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings(redis_url=down, data_home=tmp_path, redis_timeout_seconds=0.5)
    client = redis.Redis.from_url(down, socket_connect_timeout=0.5)
    launcher = CeleryLauncher(client, app, settings)
    with pytest.raises(RetryLaterError, match="Redis"):
        launcher.submit(
            tenant="t1",
            type_name="diagnostics.sleep",
            payload={"seconds": 0},
            idempotency="schedule:x:2026-01-01T00:00:00+00:00",
        )
