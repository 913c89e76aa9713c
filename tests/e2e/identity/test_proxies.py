"""Whose address a request comes from: X-Forwarded-For is believed from trusted proxies only."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import _claim_redis_db, _release
from tests.support import Stack, wait_for

pytestmark = pytest.mark.e2e


def _api(stack: Stack, env: dict[str, str]) -> Iterator[str]:
    redis_url = _claim_redis_db()
    proc, url = stack.start_api(
        env={"AIA_REDIS_URL": redis_url, "AIA_BROKER_URL": redis_url, **env}
    )
    yield url
    proc.stop()
    _release(redis_url)


@pytest.fixture
def trusting(redis_stack: Stack) -> Iterator[str]:
    """An API behind two trusted proxies: this host, then one on 10.0.0.0/8."""
    yield from _api(redis_stack, {"AIA_TRUSTED_PROXIES": '["127.0.0.1", "10.0.0.0/8"]'})


@pytest.fixture
def untrusting(redis_stack: Stack) -> Iterator[str]:
    """An API that trusts no proxy, as by default."""
    yield from _api(redis_stack, {})


def _failed_login(url: str, stack: Stack, forwarded_for: str) -> str:
    """Fail a login of a new account with ``X-Forwarded-For``; the account's name."""
    username = stack.create_user()
    response = httpx.post(
        f"{url}/v1/auth/token",
        json={"username": username, "password": "wrong password!!"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    assert response.status_code == 401
    return username


def _audited_address(stack: Stack, username: str) -> str:
    """The client address the audit log gives the login of ``username``."""

    def find() -> str | None:
        with stack.client() as client:
            items = client.get("/v1/audit", params={"limit": 200}).json()["items"]
        found = [e["client_address"] for e in items if e["actor"] == username]
        return found[0] if found else None

    return str(wait_for(find, 10, 0.1, f"the audit log to show a login of {username}"))


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    redis_stack: Stack, untrusting: str
) -> None:
    username = _failed_login(untrusting, redis_stack, "203.0.113.50")
    assert _audited_address(redis_stack, username) == "127.0.0.1"


def test_the_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy(
    redis_stack: Stack, trusting: str
) -> None:
    # What the client wrote itself (192.0.2.1) sits left of what the proxies added.
    username = _failed_login(trusting, redis_stack, "192.0.2.1, 203.0.113.60, 10.1.2.3")
    assert _audited_address(redis_stack, username) == "203.0.113.60"
    # A peer with no header is the client itself.
    direct = redis_stack.create_user()
    httpx.post(f"{trusting}/v1/auth/token", json={"username": direct, "password": "wrong!!"})
    assert _audited_address(redis_stack, direct) == "127.0.0.1"
