"""The dashboard's session cookie: how it is set, what it opens, and the CSRF rules.

httpx keeps no Secure cookie for http://127.0.0.1, so the tests send the
cookie themselves, as a browser of this origin would.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from aia_api.identity.browser import COOKIE_NAME
from tests.e2e.people import person
from tests.support import TEST_PASSWORD, Stack

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def _sign_in(url: str, **body: str) -> tuple[str, str]:
    """(cookie value, CSRF token) of a new session."""
    response = httpx.post(f"{url}/v1/auth/session", json=body, timeout=30)
    assert response.status_code == 200, response.text
    jar: SimpleCookie = SimpleCookie()
    jar.load(response.headers["set-cookie"])
    return jar[COOKIE_NAME].value, response.json()["csrf_token"]


def _cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE_NAME}={value}"}


def test_a_password_session_sets_a_locked_down_cookie_and_no_token_in_the_body(
    redis_stack: Stack,
) -> None:
    username = redis_stack.create_user("operator")
    response = httpx.post(
        f"{redis_stack.api_url}/v1/auth/session",
        json={"username": username, "password": TEST_PASSWORD},
    )
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= attributes
    assert "SameSite=Strict" in cookie
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"csrf_token", "expires_in", "principal"}
    assert body["principal"]["kind"] == "user"
    assert body["principal"]["role"] == "operator"
    value = SimpleCookie(cookie)[COOKIE_NAME].value
    assert value not in response.text


def test_the_cookie_reads_but_changes_nothing_without_the_csrf_token(redis_stack: Stack) -> None:
    url = redis_stack.api_url
    key = redis_stack.create_key("operator")
    value, csrf = _sign_in(url, api_key=key)
    with httpx.Client(base_url=url, headers=_cookie(value), timeout=30) as browser:
        listed = browser.get("/v1/tasks?limit=1")
        assert listed.status_code == 200, listed.text
        session = browser.get("/v1/auth/session").json()
        assert session["csrf_token"] == csrf
        assert session["principal"]["kind"] == "key"
        assert session["expires_in"] is None

        body = {"type": "diagnostics.sleep", "payload": {"seconds": 0}}
        refused = browser.post("/v1/tasks", json=body)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["type"].endswith(":cross-site-refused")
        wrong = browser.post("/v1/tasks", json=body, headers={"X-CSRF-Token": csrf + "x"})
        assert wrong.status_code == 403
        accepted = browser.post("/v1/tasks", json=body, headers={"X-CSRF-Token": csrf})
        assert accepted.status_code == 202, accepted.text

        # An SSE stream opens with the cookie alone: EventSource cannot send headers.
        events = accepted.json()["links"]["events"]
        with browser.stream("GET", events) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")

        # Signing out needs the token like any change, and clears the cookie.
        assert browser.delete("/v1/auth/session").status_code == 403
        out = browser.delete("/v1/auth/session", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 204
        assert "Max-Age=0" in out.headers["set-cookie"]


def test_a_token_from_another_session_is_refused(redis_stack: Stack) -> None:
    url = redis_stack.api_url
    mine, _ = _sign_in(url, api_key=redis_stack.create_key("operator"))
    _, theirs = _sign_in(url, api_key=redis_stack.create_key("operator"))
    refused = httpx.post(
        f"{url}/v1/tasks",
        json={"type": "diagnostics.sleep", "payload": {"seconds": 0}},
        headers={**_cookie(mine), "X-CSRF-Token": theirs},
    )
    assert refused.status_code == 403, refused.text


def test_bearer_and_api_key_callers_need_no_csrf_token(redis_stack: Stack) -> None:
    someone = person(redis_stack)
    body = {"type": "diagnostics.sleep", "payload": {"seconds": 0}}
    url = redis_stack.api_url
    # A stray cookie beside real credentials changes nothing: the header wins.
    stray = _cookie("aia_not-a-key")
    by_token = httpx.post(
        f"{url}/v1/tasks", json=body, headers={"Authorization": f"Bearer {someone.access}", **stray}
    )
    assert by_token.status_code == 202, by_token.text
    by_key = httpx.post(f"{url}/v1/tasks", json=body, headers={"X-API-Key": redis_stack.api_key})
    assert by_key.status_code == 202, by_key.text
    session = httpx.get(
        f"{url}/v1/auth/session", headers={"Authorization": f"Bearer {someone.access}"}
    )
    assert session.status_code == 200
    assert session.json()["csrf_token"] is None


def test_bad_sign_ins_are_problems(redis_stack: Stack) -> None:
    url = redis_stack.api_url
    username = redis_stack.create_user("viewer")
    wrong = httpx.post(
        f"{url}/v1/auth/session", json={"username": username, "password": "not the password"}
    )
    assert (wrong.status_code, wrong.headers["content-type"]) == (401, PROBLEM)
    assert "set-cookie" not in wrong.headers
    bad_key = httpx.post(f"{url}/v1/auth/session", json={"api_key": "aia_nope"})
    assert bad_key.status_code == 401
    for body in ({}, {"username": username}, {"api_key": "k", "username": username}, []):
        response = httpx.post(f"{url}/v1/auth/session", json=body)
        assert response.status_code in (400, 422), body
        assert response.headers["content-type"] == PROBLEM
    # Reading the session needs one.
    assert httpx.get(f"{url}/v1/auth/session").status_code == 401
    expired = httpx.get(f"{url}/v1/auth/session", headers=_cookie("not.a.jwt"))
    assert expired.status_code == 401


def test_a_websocket_by_cookie_must_come_from_this_origin(redis_stack: Stack) -> None:
    url = redis_stack.api_url
    value, _ = _sign_in(url, api_key=redis_stack.create_key("operator"))
    ws_url = url.replace("http://", "ws://") + "/v1/ws"
    with connect(ws_url, additional_headers={**_cookie(value), "Origin": url}) as ws:
        ws.send('{"action": "subscribe", "task_id": "no-such-task"}')
        assert '"type"' in str(ws.recv(timeout=10))
    with (
        pytest.raises(InvalidStatus),
        connect(
            ws_url, additional_headers={**_cookie(value), "Origin": "https://evil.example"}
        ) as ws,
    ):
        ws.recv(timeout=10)
