"""Request rates, login throttling, failed-authentication budgets, the per-tenant in-flight
cap, MFA and the audit log."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pyotp
import pytest

from tests.conftest import _claim_redis_db, _release
from tests.support import TEST_PASSWORD, Stack

pytestmark = pytest.mark.e2e

SLEEP = {"type": "diagnostics.sleep", "payload": {"seconds": 0}}


# The budgets the limited API is started with.
PAIR_FAILURES = 3
ACCOUNT_FAILURES = 6
ADDRESS_FAILURES = 8
AUTH_FAILURES = 5
# Trusted as proxies: the tests speak for any client through X-Forwarded-For.
TRUSTED = '["127.0.0.1", "10.0.0.0/8"]'


def _api(stack: Stack, env: dict[str, str]) -> Iterator[str]:
    """An API of ``stack`` on a Redis database of its own (throttles and counters)."""
    redis_url = _claim_redis_db()
    proc, url = stack.start_api(
        env={"AIA_REDIS_URL": redis_url, "AIA_BROKER_URL": redis_url, **env}
    )
    yield url
    proc.stop()
    _release(redis_url)


@pytest.fixture
def limited(redis_stack: Stack) -> Iterator[str]:
    """An API with tight limits, behind a trusted proxy (this host)."""
    yield from _api(
        redis_stack,
        {
            "AIA_RATE_LIMIT_PER_MINUTE": "5",
            "AIA_AUTH_RATE_LIMIT_PER_MINUTE": "100",
            "AIA_LOGIN_MAX_FAILURES": str(PAIR_FAILURES),
            "AIA_LOGIN_ACCOUNT_MAX_FAILURES": str(ACCOUNT_FAILURES),
            "AIA_LOGIN_ADDRESS_MAX_FAILURES": str(ADDRESS_FAILURES),
            # Long enough that no wait runs out while a test runs.
            "AIA_LOGIN_DELAY_SECONDS": "600",
            "AIA_AUTH_FAILURES_PER_MINUTE": str(AUTH_FAILURES),
            "AIA_TENANT_MAX_INFLIGHT": "2",
            "AIA_TRUSTED_PROXIES": TRUSTED,
        },
    )


def _user(stack: Stack, role: str = "operator", tenant: str = "default") -> str:
    return stack.create_user(role, tenant)


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def _login(
    url: str,
    username: str,
    password: str = TEST_PASSWORD,
    headers: dict[str, str] | None = None,
    **extra: str,
) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/auth/token",
        json={"username": username, "password": password, **extra},
        headers=headers,
        # Each password is checked with argon2: a burst of them takes a while.
        timeout=60,
    )


def _at_once(count: int, call: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """``call(0) .. call(count - 1)``, all in flight together."""
    start = threading.Barrier(count)

    def run(n: int) -> httpx.Response:
        start.wait()
        return call(n)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def _six_requests(stack: Stack, url: str) -> list[httpx.Response]:
    """Six requests with a fresh key, all within one rate-limit window.

    The windows are minutes of the clock: a sequence that a new minute cut in
    two (its Reset header went up, not down) is run again with another key,
    and the next minute has just begun.
    """
    for _ in range(2):
        headers = {"Authorization": f"Bearer {stack.create_key('viewer')}"}
        answers = [httpx.get(f"{url}/v1/tasks", headers=headers) for _ in range(6)]
        resets = [int(a.headers["ratelimit-reset"]) for a in answers]
        if all(later <= earlier for earlier, later in itertools.pairwise(resets)):
            return answers
    raise AssertionError(f"two sequences of six requests each crossed a minute: {resets}")


def test_rate_limit_headers_and_429(redis_stack: Stack, limited: str) -> None:
    answers = _six_requests(redis_stack, limited)
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


def test_a_parallel_burst_of_wrong_passwords_gets_the_budget_and_no_more(
    redis_stack: Stack, limited: str
) -> None:
    username = _user(redis_stack)
    burst = _at_once(
        20, lambda _: _login(limited, username, "wrong password!!", _from("203.0.113.9"))
    )
    codes = [a.status_code for a in burst]
    assert codes.count(401) == PAIR_FAILURES, codes
    assert codes.count(429) == 20 - PAIR_FAILURES
    refused = next(a for a in burst if a.status_code == 429)
    assert refused.json()["type"] == "urn:aia:problem:locked-out"
    assert 0 < int(refused.headers["retry-after"]) <= 600
    # From that address, even the right password waits now.
    assert _login(limited, username, headers=_from("203.0.113.9")).status_code == 429


def test_a_strangers_failures_do_not_stop_the_owner(redis_stack: Stack, limited: str) -> None:
    username = _user(redis_stack)
    stranger = [
        _login(limited, username, "wrong password!!", _from("203.0.113.9")).status_code
        for _ in range(PAIR_FAILURES + 2)
    ]
    assert stranger == [401] * PAIR_FAILURES + [429, 429]
    # The owner, from their own address, logs in at once.
    assert _login(limited, username, headers=_from("198.51.100.7")).status_code == 200


def test_a_guess_spread_over_addresses_slows_new_ones_but_not_the_owners(
    redis_stack: Stack, limited: str
) -> None:
    username = _user(redis_stack)
    assert _login(limited, username, headers=_from("198.51.100.7")).status_code == 200
    spread = [
        _login(limited, username, "wrong password!!", _from(f"203.0.113.{n}")).status_code
        for n in range(ACCOUNT_FAILURES)
    ]
    assert spread == [401] * ACCOUNT_FAILURES
    # The account's budget is spent: an address it has not logged in from waits...
    assert _login(limited, username, headers=_from("192.0.2.44")).status_code == 429
    # ...and the one it logged in from lately does not.
    assert _login(limited, username, headers=_from("198.51.100.7")).status_code == 200


def test_an_address_spraying_accounts_is_slowed(redis_stack: Stack, limited: str) -> None:
    names = [_user(redis_stack) for _ in range(ADDRESS_FAILURES // 2)]
    for name in names:
        for _ in range(2):
            assert (
                _login(limited, name, "wrong password!!", _from("203.0.113.9")).status_code == 401
            )
    # No account past its own budget, but the address is past its own.
    fresh = _user(redis_stack)
    assert _login(limited, fresh, headers=_from("203.0.113.9")).status_code == 429
    assert _login(limited, fresh, headers=_from("198.51.100.7")).status_code == 200


def test_a_burst_of_bad_keys_gets_429_before_any_lookup_past_the_budget(
    redis_stack: Stack, limited: str
) -> None:
    good = {"Authorization": f"Bearer {redis_stack.create_key('viewer')}", **_from("203.0.113.77")}
    assert httpx.get(f"{limited}/v1/tasks", headers=good).status_code == 200

    def made_up(n: int) -> httpx.Response:
        headers = {"X-API-Key": f"aia_made-up-{uuid.uuid4().hex}", **_from("203.0.113.77")}
        return httpx.get(f"{limited}/v1/tasks", headers=headers)

    burst = _at_once(20, made_up)
    codes = [a.status_code for a in burst]
    assert codes.count(401) == AUTH_FAILURES, codes
    assert codes.count(429) == 20 - AUTH_FAILURES
    refused = next(a for a in burst if a.status_code == 429)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:aia:problem:too-many-failures"
    assert 1 <= int(refused.headers["retry-after"]) <= 61
    # /metrics, public for its scrape token, is no way around the budget.
    metrics = httpx.get(
        f"{limited}/metrics", headers={"X-API-Key": "aia_x", **_from("203.0.113.77")}
    )
    assert metrics.status_code == 429
    # A key this process already knows costs no lookup: it still gets in.
    assert httpx.get(f"{limited}/v1/tasks", headers=good).status_code == 200
    # Another address has its own budget.
    other = {"X-API-Key": "aia_made-up", **_from("198.51.100.7")}
    assert httpx.get(f"{limited}/v1/tasks", headers=other).status_code == 401


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
    enrolled = httpx.post(
        f"{url}/v1/auth/mfa/enroll", json={"password": TEST_PASSWORD}, headers=auth
    )
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
    # The enrolment spent the current code: the next one logs in, once.
    upcoming = pyotp.TOTP(secret).at(time.time() + 30)
    assert _login(url, username, totp=upcoming).status_code == 200
    assert _login(url, username, totp=upcoming).status_code == 401
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
