"""API keys never outlive their maker's rights, expire by default, and admin keys need MFA."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from tests.e2e.people import PROBLEM, bearer, login, next_code, person, with_mfa
from tests.support import Stack, wait_for

pytestmark = pytest.mark.e2e

SLEEP = {"type": "diagnostics.sleep", "payload": {"seconds": 0}}
DEFAULT_DAYS = 90
MAX_DAYS = 365


def _submit_status(url: str, key: str) -> int:
    return httpx.post(f"{url}/v1/tasks", json=SLEEP, headers=bearer(key)).status_code


def _lifetime(key: dict) -> timedelta:
    expires = datetime.fromisoformat(key["expires_at"])
    return expires - datetime.fromisoformat(key["created_at"])


def _listed(client: httpx.Client, key_id: str) -> dict:
    return next(k for k in client.get("/v1/keys").json()["items"] if k["id"] == key_id)


def test_a_key_acts_with_its_makers_current_role(redis_stack: Stack) -> None:
    url = redis_stack.api_url
    maker = person(redis_stack, "operator")
    made = httpx.post(
        f"{url}/v1/keys", json={"name": "ci", "role": "operator"}, headers=bearer(maker.access)
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert _submit_status(url, key) == 202  # and now cached by the API
    redis_stack.aia("users", "set-role", "--username", maker.username, "--role", "viewer")
    # Well within the cache time (30 s): the demotion reaches the key at once.
    wait_for(lambda: _submit_status(url, key) == 403, 10, what="the key to act as a viewer")
    assert httpx.get(f"{url}/v1/tasks", headers=bearer(key)).status_code == 200


def test_a_deleted_persons_keys_stop_at_once(redis_stack: Stack, redis_api: httpx.Client) -> None:
    url = redis_stack.api_url
    maker = person(redis_stack, "operator")
    made = httpx.post(
        f"{url}/v1/keys", json={"name": "ci", "role": "operator"}, headers=bearer(maker.access)
    ).json()
    assert _submit_status(url, made["key"]) == 202
    redis_stack.aia("users", "delete", "--username", maker.username)
    wait_for(lambda: _submit_status(url, made["key"]) == 401, 10, what="the key to stop")
    assert _listed(redis_api, made["id"])["revoked_at"] is not None
    assert login(url, maker.username).status_code == 401
    events = redis_api.get("/v1/audit", params={"action": "user.delete"}).json()["items"]
    assert any(e["detail"]["username"] == maker.username for e in events)


def test_a_new_key_expires_by_default(redis_stack: Stack, redis_api: httpx.Client) -> None:
    admin = bearer(person(redis_stack, "admin").access)
    body = {"name": "default lifetime", "role": "viewer"}
    made = httpx.post(f"{redis_stack.api_url}/v1/keys", json=body, headers=admin)
    assert made.status_code == 201, made.text
    assert _lifetime(made.json()) == timedelta(days=DEFAULT_DAYS)
    # From the host too.
    redis_stack.create_key("viewer")
    newest = redis_api.get("/v1/keys").json()["items"][-1]
    assert newest["name"].startswith("tests-viewer-")
    assert _lifetime(newest) == timedelta(days=DEFAULT_DAYS)


def test_a_longer_lifetime_needs_an_admin_and_has_a_bound(
    redis_stack: Stack, redis_api: httpx.Client
) -> None:
    url = redis_stack.api_url
    operator = bearer(person(redis_stack, "operator").access)
    shorter = httpx.post(
        f"{url}/v1/keys",
        json={"name": "s", "role": "viewer", "expires_in_days": 7},
        headers=operator,
    )
    assert shorter.status_code == 201
    assert _lifetime(shorter.json()) == timedelta(days=7)
    for longer in (DEFAULT_DAYS + 1, "never"):
        body = {"name": "l", "role": "viewer", "expires_in_days": longer}
        denied = httpx.post(f"{url}/v1/keys", json=body, headers=operator)
        assert denied.status_code == 403, denied.text
        assert denied.headers["content-type"] == PROBLEM
    admin = bearer(person(redis_stack, "admin").access)
    long = httpx.post(
        f"{url}/v1/keys",
        json={"name": "l", "role": "viewer", "expires_in_days": 200},
        headers=admin,
    )
    assert long.status_code == 201
    assert _lifetime(long.json()) == timedelta(days=200)
    for beyond in (MAX_DAYS + 1, "never"):
        body = {"name": "l", "role": "viewer", "expires_in_days": beyond}
        refused = httpx.post(f"{url}/v1/keys", json=body, headers=admin)
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"] == "urn:aia:problem:key-lifetime-too-long"
    assert (
        redis_api.post("/v1/keys", json={"name": "x", "expires_in_days": "soon"}).status_code == 422
    )
    # A key made by a key expires no later than its maker.
    by_key = redis_api.post(
        "/v1/keys", json={"name": "k", "role": "viewer", "expires_in_days": 200}
    )
    assert by_key.status_code == 201
    maker = next(
        k
        for k in redis_api.get("/v1/keys").json()["items"]
        if redis_stack.api_key.startswith(k["prefix"])
    )
    assert by_key.json()["expires_at"] == maker["expires_at"]


@pytest.fixture
def unbounded_api(redis_stack: Stack) -> Iterator[str]:
    """An API whose keys may live for ever, when an admin says so."""
    proc, url = redis_stack.start_api(env={"AIA_API_KEY_MAX_DAYS": "0"})
    yield url
    proc.stop()


def test_a_key_that_never_expires_needs_no_bound(redis_stack: Stack, unbounded_api: str) -> None:
    admin = bearer(person(redis_stack, "admin").access)
    body = {"name": "for ever", "role": "viewer", "expires_in_days": "never"}
    made = httpx.post(f"{unbounded_api}/v1/keys", json=body, headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["expires_at"] is None


def test_an_admin_key_needs_an_admin_whose_session_passed_mfa(
    redis_stack: Stack, redis_api: httpx.Client
) -> None:
    url = redis_stack.api_url
    admin_key = {"name": "root", "role": "admin"}
    # Not from another key, however powerful.
    by_key = redis_api.post("/v1/keys", json=admin_key)
    assert by_key.status_code == 403
    assert by_key.json()["type"] == "urn:aia:problem:mfa-required"
    admin = person(redis_stack, "admin")
    without = httpx.post(f"{url}/v1/keys", json=admin_key, headers=bearer(admin.access))
    assert without.status_code == 403
    # Turning MFA on does not lift the session it was turned on in: log in with a code.
    admin = with_mfa(redis_stack, admin)
    still = httpx.post(f"{url}/v1/keys", json=admin_key, headers=bearer(admin.access))
    assert still.status_code == 403
    assert admin.totp is not None
    session = login(url, admin.username, next_code(admin.totp)).json()
    made = httpx.post(f"{url}/v1/keys", json=admin_key, headers=bearer(session["access_token"]))
    assert made.status_code == 201, made.text
    # A refreshed token belongs to the same session.
    refreshed = httpx.post(
        f"{url}/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    again = httpx.post(
        f"{url}/v1/keys", json=admin_key, headers=bearer(refreshed.json()["access_token"])
    )
    assert again.status_code == 201, again.text
    for key in (made.json(), again.json()):
        assert redis_api.delete(f"/v1/keys/{key['id']}").status_code == 204


def test_a_key_made_by_a_key_stops_when_its_maker_is_revoked(
    redis_stack: Stack, redis_api: httpx.Client
) -> None:
    url = redis_stack.api_url
    maker = redis_stack.create_key("admin")
    made = httpx.post(
        f"{url}/v1/keys", json={"name": "child", "role": "operator"}, headers=bearer(maker)
    )
    assert made.status_code == 201, made.text
    child = made.json()["key"]
    assert _submit_status(url, child) == 202  # and now cached by the API
    maker_id = next(
        k["id"] for k in redis_api.get("/v1/keys").json()["items"] if maker.startswith(k["prefix"])
    )
    assert redis_api.delete(f"/v1/keys/{maker_id}").status_code == 204
    assert _submit_status(url, child) == 401
