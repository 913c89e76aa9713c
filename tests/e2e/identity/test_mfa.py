"""MFA through the API: enrolment, codes accepted once, disable and the admin's reset."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from aia_workers.secretbox import new_key
from tests.e2e.people import (
    PROBLEM,
    audited,
    bearer,
    login,
    next_code,
    person,
    with_mfa,
)
from tests.support import TEST_PASSWORD, Stack

pytestmark = pytest.mark.e2e

# Logins raced on each API process with one recovery code.
RACERS_PER_API = 4


@pytest.fixture
def second_api(redis_stack: Stack) -> Iterator[str]:
    """Another API process on the same Redis and database."""
    proc, url = redis_stack.start_api()
    yield url
    proc.stop()


@pytest.fixture
def two_apis(redis_stack: Stack) -> Iterator[list[str]]:
    """Two more API processes, whose lockouts let a crowd of wrong codes through."""
    env = {"AIA_LOGIN_MAX_FAILURES": "1000"}
    started = [redis_stack.start_api(env=env) for _ in range(2)]
    yield [url for _, url in started]
    for proc, _ in started:
        proc.stop()


def test_enrolling_needs_the_password(redis_stack: Stack, redis_api: httpx.Client) -> None:
    url, someone = redis_stack.api_url, person(redis_stack)
    auth = bearer(someone.access)
    # An access token alone (a stolen one, say) cannot turn MFA on.
    bare = httpx.post(f"{url}/v1/auth/mfa/enroll", json={}, headers=auth)
    assert bare.status_code == 422, bare.text
    wrong = httpx.post(
        f"{url}/v1/auth/mfa/enroll", json={"password": "not it at all"}, headers=auth
    )
    assert wrong.status_code == 403, wrong.text
    assert wrong.headers["content-type"] == PROBLEM
    assert wrong.json()["type"] == "urn:aia:problem:reauthentication-failed"
    assert login(url, someone.username).status_code == 200  # still no second factor
    audited(redis_api, "mfa.enroll", {"reason": "password"}, outcome="failure")
    right = httpx.post(f"{url}/v1/auth/mfa/enroll", json={"password": TEST_PASSWORD}, headers=auth)
    assert right.status_code == 200, right.text


def test_a_totp_code_is_accepted_once_across_api_processes(
    redis_stack: Stack, second_api: str
) -> None:
    someone = with_mfa(redis_stack, person(redis_stack))
    assert someone.totp is not None
    code = next_code(someone.totp)
    assert login(redis_stack.api_url, someone.username, code).status_code == 200
    replayed = login(second_api, someone.username, code)
    assert replayed.status_code == 401
    assert replayed.json()["type"] == "urn:aia:problem:mfa-required"
    assert login(redis_stack.api_url, someone.username, code).status_code == 401
    # The code that confirmed the enrolment was spent then.
    assert login(second_api, someone.username, someone.totp.now()).status_code == 401


def test_one_recovery_code_lets_one_of_concurrent_logins_in(
    redis_stack: Stack, two_apis: list[str]
) -> None:
    someone = with_mfa(redis_stack, person(redis_stack))
    code = someone.recovery[0]
    urls = two_apis * RACERS_PER_API
    start = threading.Barrier(len(urls))

    def attempt(url: str) -> int:
        start.wait()
        return login(url, someone.username, code).status_code

    with ThreadPoolExecutor(len(urls)) as pool:
        statuses = list(pool.map(attempt, urls))
    assert statuses.count(200) == 1, statuses
    assert login(two_apis[1], someone.username, someone.recovery[1]).status_code == 200


def test_disabling_needs_the_password_and_a_code_and_is_audited(
    redis_stack: Stack, redis_api: httpx.Client
) -> None:
    url = redis_stack.api_url
    someone = with_mfa(redis_stack, person(redis_stack))
    assert someone.totp is not None
    session = login(url, someone.username, next_code(someone.totp)).json()
    auth = bearer(session["access_token"])
    disable = f"{url}/v1/auth/mfa/disable"
    wrong_password = {"password": "not it at all", "code": someone.recovery[0]}
    assert httpx.post(disable, json=wrong_password, headers=auth).status_code == 403
    wrong_code = {"password": TEST_PASSWORD, "code": "000000"}
    refused = httpx.post(disable, json=wrong_code, headers=auth)
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:aia:problem:reauthentication-failed"
    assert httpx.post(disable, json={"password": TEST_PASSWORD}, headers=auth).status_code == 422
    done = httpx.post(
        disable, json={"password": TEST_PASSWORD, "code": someone.recovery[0]}, headers=auth
    )
    assert done.status_code == 204, done.text
    assert login(url, someone.username).status_code == 200  # no second factor any more
    # Every session of the account ends with it.
    refreshed = httpx.post(
        f"{url}/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status_code == 401
    user_id = audited(redis_api, "mfa.disable", {"username": someone.username})["actor"]
    audited(redis_api, "mfa.disable", {"username": someone.username}, outcome="failure")
    assert user_id


def test_an_admin_resets_a_persons_mfa(redis_stack: Stack, redis_api: httpx.Client) -> None:
    url = redis_stack.api_url
    someone = with_mfa(redis_stack, person(redis_stack))
    session = login(url, someone.username, someone.recovery[0]).json()
    body = {"username": someone.username}
    # Only an admin (users:manage), and only of the same tenant.
    operator = person(redis_stack)
    assert (
        httpx.post(f"{url}/v1/auth/mfa/reset", json=body, headers=bearer(operator.access))
    ).status_code == 403
    stranger = redis_stack.create_key("admin", tenant=f"other-{uuid.uuid4().hex[:6]}")
    elsewhere = httpx.post(f"{url}/v1/auth/mfa/reset", json=body, headers=bearer(stranger))
    assert elsewhere.status_code == 404
    assert elsewhere.headers["content-type"] == PROBLEM
    unknown = redis_api.post("/v1/auth/mfa/reset", json={"username": "nobody-" + uuid.uuid4().hex})
    assert unknown.status_code == 404

    assert redis_api.post("/v1/auth/mfa/reset", json=body).status_code == 204
    assert login(url, someone.username).status_code == 200
    refreshed = httpx.post(
        f"{url}/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status_code == 401
    event = audited(redis_api, "mfa.reset", {"username": someone.username})
    assert event["actor"].startswith("key:")
    # Reset is not on: there is nothing to reset a second time.
    assert redis_api.post("/v1/auth/mfa/reset", json=body).status_code == 409


def test_a_secret_no_key_opens_is_a_503_not_a_500(redis_stack: Stack) -> None:
    someone = with_mfa(redis_stack, person(redis_stack))
    assert someone.totp is not None
    # An API whose keys no longer include the one the seed was sealed with.
    proc, url = redis_stack.start_api(env={"AIA_ENCRYPTION_KEYS": f'["{new_key()}"]'})
    try:
        response = login(url, someone.username, next_code(someone.totp))
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["retry-after"]
        assert response.json()["type"].endswith("secrets-unavailable")
    finally:
        proc.stop()
