"""Browser sessions: the dashboard's credential in a cookie, with CSRF protection.

The cookie holds the credential the session signed in with (an access token,
or the API key typed in), so every check a header credential goes through
applies to it unchanged: expiry, revocation, a demotion, an open stream being
checked again. It is HttpOnly (no script reads it), Secure and SameSite=Strict
(never sent from another site), and named ``__Host-`` so no subdomain can set
or shadow it.

A cookie is sent by the browser on its own, so a request that changes
anything must also carry ``X-CSRF-Token``: an HMAC of the credential under
the server's secret, which only a page of this origin can have read (from the
sign-in answer or ``GET /v1/auth/session``). Reading (GET, HEAD, an event
stream, which cannot set headers) needs the cookie alone. A WebSocket
handshake is a GET too, but any site's script may open one, so it must come
from a page of this origin.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import Scope

from aia_api.identity.credentials import API_KEY_PREFIX
from aia_api.tasks.streaming.credential import Credential
from aia_workers.errors import AiaError

__all__ = [
    "COOKIE_NAME",
    "CSRF_HEADER",
    "BrowserSessions",
    "CrossSiteRefused",
    "session_cookie",
]

COOKIE_NAME = "__Host-aia_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSRF_CONTEXT = b"aia browser session csrf v1\x00"


class CrossSiteRefused(AiaError):
    """Raised when a request by session cookie lacks proof that it came from the page."""


def session_cookie(headers: Headers) -> str | None:
    """The session cookie's value, if the request carries one."""
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(COOKIE_NAME)
    return morsel.value if morsel is not None and morsel.value else None


class BrowserSessions:
    """Makes and checks the session cookie and its CSRF token, for one server secret."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(_CSRF_CONTEXT + secret.encode()).digest()

    def csrf_token(self, credential: str) -> str:
        """The token a page must echo in X-CSRF-Token: bound to this session's credential."""
        mac = hmac.new(self._key, credential.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def credential(self, scope: Scope, cookie: str) -> Credential:
        """What ``cookie`` stands for on this request; CrossSiteRefused when it may not be used.

        Unsafe methods need the CSRF token; a WebSocket needs an Origin of this host.
        """
        headers = Headers(scope=scope)
        if scope["type"] == "websocket":
            if not _same_origin(headers):
                raise CrossSiteRefused(
                    "a WebSocket authenticated by the session cookie must be opened by a page "
                    "of this origin"
                )
        elif scope.get("method", "GET") not in _SAFE_METHODS:
            sent = headers.get(CSRF_HEADER.lower(), "")
            if not hmac.compare_digest(sent.encode(), self.csrf_token(cookie).encode()):
                raise CrossSiteRefused(
                    f"a request authenticated by the session cookie must send {CSRF_HEADER} "
                    "with the token from POST or GET /v1/auth/session"
                )
        if cookie.startswith(API_KEY_PREFIX):
            return Credential(None, cookie)
        return Credential(f"Bearer {cookie}", None)

    @staticmethod
    def set_cookie(credential: str, max_age_seconds: int | None) -> str:
        """A Set-Cookie value for ``credential``; a browser-session cookie without a max age."""
        lifetime = f"; Max-Age={max_age_seconds}" if max_age_seconds is not None else ""
        return f"{COOKIE_NAME}={credential}; Path=/; HttpOnly; Secure; SameSite=Strict{lifetime}"

    @staticmethod
    def clear_cookie() -> str:
        return f"{COOKIE_NAME}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"


def _same_origin(headers: Headers) -> bool:
    origin = headers.get("origin")
    host = headers.get("host")
    if not origin or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()
