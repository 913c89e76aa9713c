"""The session cookie's CSRF rules, without a server: which requests the cookie may authenticate."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers
from starlette.types import Scope

from aia_api.identity.browser import (
    COOKIE_NAME,
    BrowserSessions,
    CrossSiteRefused,
    session_cookie,
)

SESSIONS = BrowserSessions("a-test-secret-of-enough-length-for-hmac")
TOKEN = "eyJ.header.sig"
KEY = "aia_someapikey"


def _scope(method: str = "GET", kind: str = "http", **headers: str) -> Scope:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return {"type": kind, "method": method, "headers": raw, "path": "/v1/tasks"}


def test_the_csrf_token_is_bound_to_the_session_and_the_secret() -> None:
    token = SESSIONS.csrf_token(TOKEN)
    assert token == SESSIONS.csrf_token(TOKEN)
    assert token != SESSIONS.csrf_token(KEY)
    assert token != BrowserSessions("another-secret-of-enough-length-for-hmac").csrf_token(TOKEN)
    assert TOKEN not in token


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_reading_needs_the_cookie_alone(method: str) -> None:
    credential = SESSIONS.credential(_scope(method), TOKEN)
    assert (credential.authorization, credential.api_key) == (f"Bearer {TOKEN}", None)
    assert SESSIONS.credential(_scope(method), KEY).api_key == KEY


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_change_needs_the_token_of_this_session(method: str) -> None:
    with pytest.raises(CrossSiteRefused):
        SESSIONS.credential(_scope(method), TOKEN)
    with pytest.raises(CrossSiteRefused):
        SESSIONS.credential(_scope(method, x_csrf_token=SESSIONS.csrf_token(KEY)), TOKEN)
    accepted = SESSIONS.credential(_scope(method, x_csrf_token=SESSIONS.csrf_token(TOKEN)), TOKEN)
    assert accepted.authorization == f"Bearer {TOKEN}"


def test_a_websocket_must_come_from_this_origin() -> None:
    ok = _scope(kind="websocket", host="127.0.0.1:8000", origin="http://127.0.0.1:8000")
    assert SESSIONS.credential(ok, KEY).api_key == KEY
    for headers in (
        {"host": "127.0.0.1:8000", "origin": "https://evil.example"},
        {"host": "127.0.0.1:8000"},
        {"host": "127.0.0.1:8000", "origin": "null"},
    ):
        with pytest.raises(CrossSiteRefused):
            SESSIONS.credential(_scope(kind="websocket", **headers), KEY)


def test_the_cookie_is_found_among_others_and_bad_headers_are_no_session() -> None:
    assert session_cookie(Headers({"cookie": f"a=1; {COOKIE_NAME}={TOKEN}; b=2"})) == TOKEN
    assert session_cookie(Headers({"cookie": "a=1"})) is None
    assert session_cookie(Headers({"cookie": f"{COOKIE_NAME}="})) is None
    assert session_cookie(Headers({})) is None


def test_the_cookie_is_locked_down() -> None:
    cookie = BrowserSessions.set_cookie(TOKEN, 900)
    assert cookie.startswith(f"{COOKIE_NAME}={TOKEN};")
    for attribute in ("Path=/", "HttpOnly", "Secure", "SameSite=Strict", "Max-Age=900"):
        assert attribute in cookie
    assert "Max-Age" not in BrowserSessions.set_cookie(KEY, None)
    assert "Max-Age=0" in BrowserSessions.clear_cookie()
