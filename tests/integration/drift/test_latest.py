"""The latest-verdict hash on a real Redis: a later verdict replaces an earlier one, never back."""

from __future__ import annotations

import pytest
import redis

from aia_workers.backbone.keys import DRIFT_LATEST_KEY
from aia_workers.drift.latest import LatestVerdict, read_latest, record_latest

pytestmark = pytest.mark.integration


def test_a_model_keeps_its_latest_verdict(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        first = LatestVerdict("t1", "churn", 1, "r1", False, 0.0, 100.0)
        later = LatestVerdict("t1", "churn", 1, "r2", True, 0.5, 200.0)
        other = LatestVerdict("t2", "churn", 4, "r3", True, 1.0, 150.0)
        assert record_latest(client, first)
        assert record_latest(client, later)
        # A check that finished late (or a redelivery) does not put an older verdict back.
        assert not record_latest(client, first)
        assert record_latest(client, other)
        verdicts = read_latest(client.hgetall(DRIFT_LATEST_KEY))
        assert sorted(verdicts, key=lambda v: v.tenant) == [later, other]
    finally:
        client.close()
