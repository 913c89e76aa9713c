"""Role bounds on a submit: how high a priority and how long a diagnostics.sleep."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import _claim_redis_db, _release
from tests.support import Stack, private_stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def bounded_api(tmp_path: Path) -> Iterator[Stack]:
    """An API with its own role bounds and no worker: whatever is accepted stays queued."""
    url = _claim_redis_db()
    stack = private_stack(
        tmp_path,
        url,
        env={"AIA_OPERATOR_MAX_PRIORITY": "6", "AIA_DIAGNOSTICS_SLEEP_MAX_SECONDS": "30"},
    )
    yield stack
    stack.stop()
    _release(url)


def _sleep(client: httpx.Client, seconds: float, priority: int | None = None) -> httpx.Response:
    body = {"type": "diagnostics.sleep", "payload": {"seconds": seconds}, "priority": priority}
    return client.post("/v1/tasks", json=body)


def test_priority_and_sleep_are_bounded_below_admin(bounded_api: Stack) -> None:
    operator = bounded_api.create_key("operator", "tenant-p")
    admin = bounded_api.create_key("admin", "tenant-p")
    with bounded_api.client(operator) as op, bounded_api.client(admin) as ad:
        refused = _sleep(op, 0, priority=7)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["type"] == "urn:aia:problem:beyond-role-bound"
        assert "priority 7 is above 6" in problem["detail"]
        assert (problem["bound"], problem["role"]) == (6, "operator")
        assert [e["pointer"] for e in problem["errors"]] == ["/priority"]
        assert _sleep(op, 0, priority=6).status_code == 202
        assert _sleep(ad, 0, priority=9).status_code == 202

        too_long = _sleep(op, 31)
        assert too_long.status_code == 403
        problem = too_long.json()
        assert problem["type"] == "urn:aia:problem:beyond-role-bound"
        assert "at most 30 seconds" in problem["detail"]
        assert problem["bound"] == 30
        assert [e["pointer"] for e in problem["errors"]] == ["/payload/seconds"]
        assert _sleep(op, 30).status_code == 202
        assert _sleep(ad, 600).status_code == 202
        # Past what anyone may ask is still the schema's 422.
        assert _sleep(ad, 601).status_code == 422
