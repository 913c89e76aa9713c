"""Rate limits, login lockouts, the per-tenant in-flight cap, MFA and the audit log."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pyotp
import pytest

from tests.conftest import _claim_redis_db, _release
from tests.support import TEST_PASSWORD, Stack

pytestmark = pytest.mark.e2e

SLEEP = {"type": "diagnostics.sleep", "payload": {"seconds": 0}}


@pytest.fixture
def limited(redis_stack: Stack) -> Iterator[str]:
    """An API with tight limits, on a Redis database of its own (locks and counters)."""
    redis_url = _claim_redis_db()
    proc, url = redis_stack.start_api(
        env={
            "AIA_REDIS_URL": redis_url,
            "AIA_BROKER_URL": redis_url,
            "AIA_RATE_LIMIT_PER_MINUTE": "5",
            "AIA_AUTH_RATE_LIMIT_PER_MINUTE": "40",
            "AIA_LOGIN_MAX_FAILURES": "3",
            "AIA_LOGIN_ADDRESS_MAX_FAILURES": "8",
            "AIA_TENANT_MAX_INFLIGHT": "2",
        }
    )
    yield url
    proc.stop()
    _release(redis_url)


def _user(stack: Stack, role: str = "operator", tenant: str = "default") -> str:
    return stack.create_user(role, tenant)


def _login(url: str, username: str, password: str = TEST_PASSWORD, **extra: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/auth/token", json={"username": username, "password": password, **extra}
    )


def test_rate_limit_headers_and_429(redis_stack: Stack, limited: str) -> None:
    key = redis_stack.create_key("viewer")
    headers = {"Authorization": f"Bearer {key}"}
    answers = [httpx.get(f"{limited}/v1/tasks", headers=headers) for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    assert answers[0].headers["ratelimit-limit"] == "5"
    assert answers[0].headers["ratelimit-remaining"] == "4"
    assert answers[4].headers["ratelimit-remaining"] == "0"
    refused = answers[5]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 61
    assert refused.headers["ratelimit-remaining"] == "0"
    # Another principal has its own budget.
    other = {"Authorization": f"Bearer {redis_stack.create_key('viewer')}"}
    assert httpx.get(f"{limited}/v1/tasks", headers=other).status_code == 200


def test_repeated_failures_lock_the_account_even_for_the_right_password(
    redis_stack: Stack, limited: str
) -> None:
    username = _user(redis_stack)
    for _ in range(3):
        assert _login(limited, username, "wrong password!!").status_code == 401
    locked = _login(limited, username)
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert locked.json()["type"] == "urn:aia:problem:locked-out"
    # Other accounts are not locked by it.
    assert _login(limited, _user(redis_stack)).status_code == 200


def test_repeated_failures_from_one_address_lock_the_address(
    redis_stack: Stack, limited: str
) -> None:
    names = [_user(redis_stack) for _ in range(5)]
    for name in names:
        for _ in range(2):
            _login(limited, name, "wrong password!!")
    # Eight failures from 127.0.0.1, no account past its own limit: the address is locked.
    assert _login(limited, _user(redis_stack)).status_code == 429


def test_tenant_in_flight_cap(redis_stack: Stack, limited: str) -> None:
    tenant = f"capped-{uuid.uuid4().hex[:6]}"
    key = redis_stack.create_key("operator", tenant=tenant)
    headers = {"Authorization": f"Bearer {key}"}
    slow = {"type": "diagnostics.sleep", "payload": {"seconds": 30}}
    # No worker consumes this API's Redis database, so both stay queued.
    assert httpx.post(f"{limited}/v1/tasks", json=slow, headers=headers).status_code == 202
    first = httpx.post(f"{limited}/v1/tasks", json=slow, headers=headers)
    assert first.status_code == 202
    full = httpx.post(f"{limited}/v1/tasks", json=slow, headers=headers)
    assert full.status_code == 429
    assert full.json()["type"] == "urn:aia:problem:too-many-tasks-in-flight"
    # Finishing one (here: cancelling it) makes room.
    assert (
        httpx.post(f"{limited}{first.json()['links']['self']}/cancel", headers=headers).status_code
        == 202
    )
    assert httpx.post(f"{limited}/v1/tasks", json=slow, headers=headers).status_code == 202


def test_mfa_enrolment_login_and_recovery_codes(redis_stack: Stack) -> None:
    url = redis_stack.api_url
    username = _user(redis_stack)
    access = _login(url, username).json()["access_token"]
    auth = {"Authorization": f"Bearer {access}"}
    enrolled = httpx.post(f"{url}/v1/auth/mfa/enroll", headers=auth)
    assert enrolled.status_code == 200
    secret = enrolled.json()["secret"]
    assert enrolled.json()["otpauth_uri"].startswith("otpauth://totp/")
    assert (
        httpx.post(f"{url}/v1/auth/mfa/verify", json={"code": "000000"}, headers=auth).status_code
        == 422
    )
    verified = httpx.post(
        f"{url}/v1/auth/mfa/verify", json={"code": pyotp.TOTP(secret).now()}, headers=auth
    )
    assert verified.status_code == 200
    recovery = verified.json()["recovery_codes"]
    assert len(recovery) == 10

    needs = _login(url, username)
    assert needs.status_code == 401
    assert needs.json()["type"] == "urn:aia:problem:mfa-required"
    assert _login(url, username, totp="123456").status_code == 401
    assert _login(url, username, totp=pyotp.TOTP(secret).now()).status_code == 200
    assert _login(url, username, totp=recovery[0]).status_code == 200
    assert _login(url, username, totp=recovery[0]).status_code == 401  # spent
    # Keys cannot enroll: MFA is for people.
    key_auth = {"Authorization": f"Bearer {redis_stack.api_key}"}
    assert httpx.post(f"{url}/v1/auth/mfa/enroll", headers=key_auth).status_code == 403


def test_audit_log_records_security_events_per_tenant(redis_stack: Stack) -> None:
    url = redis_stack.api_url
    tenant = f"audited-{uuid.uuid4().hex[:6]}"
    admin = redis_stack.create_key("admin", tenant=tenant)
    username = _user(redis_stack, tenant=tenant)
    _login(url, username, "wrong password!!")
    _login(url, username)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as client:
        created = client.post("/v1/keys", json={"name": "audited", "role": "viewer"}).json()
        client.delete(f"/v1/keys/{created['id']}")
        viewer = {"Authorization": f"Bearer {created['key']}"}
        # A viewer's denied submit is recorded too (with a still-valid viewer key).
        live_viewer = client.post("/v1/keys", json={"name": "viewer", "role": "viewer"}).json()
        denied = httpx.post(
            f"{url}/v1/tasks", json=SLEEP, headers={"Authorization": f"Bearer {live_viewer['key']}"}
        )
        assert denied.status_code == 403
        assert httpx.get(f"{url}/v1/audit", headers=viewer).status_code == 401
        assert (
            httpx.get(
                f"{url}/v1/audit", headers={"Authorization": f"Bearer {live_viewer['key']}"}
            ).status_code
            == 403
        )

        def actions() -> list[tuple[str, str]]:
            items = client.get("/v1/audit", params={"limit": 200}).json()["items"]
            return [(e["action"], e["outcome"]) for e in items]

        deadline = time.monotonic() + 5
        while ("permission.denied", "failure") not in actions() and time.monotonic() < deadline:
            time.sleep(0.1)
        seen = actions()
        for expected in [
            ("login", "failure"),
            ("login", "success"),
            ("key.create", "success"),
            ("key.revoke", "success"),
            ("permission.denied", "failure"),
        ]:
            assert expected in seen, (expected, seen)
        failures = client.get("/v1/audit", params={"outcome": "failure"}).json()["items"]
        assert {e["outcome"] for e in failures} == {"failure"}
        page = client.get("/v1/audit", params={"limit": 2}).json()
        assert len(page["items"]) == 2
        assert page["next_cursor"]
    # Another tenant's admin sees none of it.
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {redis_stack.api_key}"}
    ) as ours:
        ids = {e["id"] for e in ours.get("/v1/audit", params={"limit": 200}).json()["items"]}
        theirs = {e["id"] for e in client_items(url, admin)}
        assert not ids & theirs


def client_items(url: str, key: str) -> list[dict]:
    response = httpx.get(
        f"{url}/v1/audit", params={"limit": 200}, headers={"Authorization": f"Bearer {key}"}
    )
    return list(response.json()["items"])
