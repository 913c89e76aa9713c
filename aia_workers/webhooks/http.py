"""One webhook delivery attempt: a POST pinned to an address the SSRF guard checked."""

from __future__ import annotations

import http.cookiejar
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpcore
import httpx

from aia_workers.webhooks.deadline import Deadline, DeadlineBackend, within
from aia_workers.webhooks.ssrf import Destination

__all__ = [
    "USER_AGENT",
    "Reply",
    "host_header",
    "new_client",
    "pinned_url",
    "post",
    "retry_after_seconds",
]

USER_AGENT = "AIA-Webhooks/1"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_DELTA_SECONDS = re.compile(r"[+-]?\d+(?:\.\d+)?")
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


@dataclass(frozen=True)
class Reply:
    """What one attempt got back.

    Exactly one of ``status`` and ``error`` is None: ``error`` says why no
    status arrived. ``duration_ms`` is the attempt's wall time in milliseconds;
    ``body`` is the start of the response body (lossily decoded UTF-8), cut
    short by the byte limit or the deadline; ``retry_after_seconds`` is the
    Retry-After header in seconds from now.
    """

    status: int | None
    duration_ms: float
    body: str
    retry_after_seconds: float | None
    error: str | None


def new_client() -> httpx.Client:
    """An httpx client fit for deliveries: no proxies from the environment, no cookies.

    A proxy would resolve the host itself, undoing the address pinning; a
    cookie jar keyed by the pinned IP would leak cookies between endpoints.
    Its network backend holds each attempt made through ``post`` to that
    attempt's deadline (deadline.py).
    """
    jar = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    transport = httpx.HTTPTransport(retries=0)
    # httpx 0.28 cannot be handed a network backend, so the pool it built is
    # replaced by one with its default limits and ours.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=_LIMITS.max_connections,
        max_keepalive_connections=_LIMITS.max_keepalive_connections,
        keepalive_expiry=_LIMITS.keepalive_expiry,
        retries=0,
        # The request goes out as headers then body: without TCP_NODELAY the
        # body waits for the receiver's delayed ACK of the headers (~40 ms).
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        network_backend=DeadlineBackend(),
    )
    return httpx.Client(trust_env=False, cookies=jar, follow_redirects=False, transport=transport)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def pinned_url(destination: Destination) -> str:
    """The request URL with the host replaced by the first checked address."""
    address = _bracketed(destination.addresses[0])
    return f"{destination.scheme}://{address}:{destination.port}{destination.path_and_query}"


def host_header(destination: Destination) -> str:
    """The Host header for ``destination``: its name, and its port unless the default."""
    host = _bracketed(destination.host)
    if destination.port == _DEFAULT_PORTS.get(destination.scheme):
        return host
    return f"{host}:{destination.port}"


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After (delta-seconds or an HTTP date) in seconds from ``now``; None if unusable.

    A negative delay or a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return max(0.0, float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 5322's "-0000" zone parses as naive; HTTP dates are always GMT.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _describe(exc: Exception, timeout_seconds: float, deadline: Deadline) -> str:
    if deadline.reached:
        return (
            f"deadline exceeded: no complete reply within {deadline.seconds:g} s "
            "(AIA_WEBHOOK_DEADLINE_SECONDS)"
        )
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout after {timeout_seconds} s"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}"


def post(
    client: httpx.Client,
    destination: Destination,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_seconds: float,
    max_body_bytes: int,
    deadline: Deadline,
) -> Reply:
    """POST ``body`` to ``destination``; never raises for network errors.

    The connection goes to the first checked address, so a DNS answer that
    changed since the check cannot redirect it; the Host header and, for
    https, SNI and certificate checks use the real host name. Redirects are
    not followed. Each network wait is bounded by ``timeout_seconds`` and the
    whole attempt by ``deadline`` (with a client from ``new_client``): one
    that passes it before a status arrives is an error, and the body read
    stops there, or after ``max_body_bytes`` bytes, keeping what came.
    """
    if timeout_seconds <= 0:
        raise ValueError(f"timeout_seconds must be positive, not {timeout_seconds}")
    if max_body_bytes < 0:
        raise ValueError(f"max_body_bytes must not be negative, not {max_body_bytes}")
    request_headers = httpx.Headers(
        {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            # Only raw bytes are read, so a compressed body would be gibberish.
            "accept-encoding": "identity",
        }
    )
    # Header names are case-insensitive: these replace the caller's in any case.
    request_headers.update(headers)
    request_headers["host"] = host_header(destination)
    extensions: dict[str, str] = {}
    if destination.scheme == "https":
        extensions["sni_hostname"] = destination.host
        # A pooled TLS connection is matched by IP and port only, so another
        # host name on the same address would reuse one verified for this name.
        request_headers["connection"] = "close"
    started = time.monotonic()
    status: int | None = None
    retry_after: float | None = None
    received = bytearray()
    try:
        with (
            within(deadline),
            client.stream(
                "POST",
                pinned_url(destination),
                content=body,
                headers=request_headers,
                timeout=httpx.Timeout(timeout_seconds),
                follow_redirects=False,
                extensions=extensions,
            ) as response,
        ):
            status = response.status_code
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            for chunk in response.iter_raw() if max_body_bytes else ():
                received += chunk
                if len(received) >= max_body_bytes:
                    break
    except (httpx.HTTPError, OSError) as exc:
        if status is None:
            error = _describe(exc, timeout_seconds, deadline)
            return Reply(None, _elapsed_ms(started), "", None, error)
        # The status decided the outcome already; a body cut short changes nothing.
    text = bytes(received[:max_body_bytes]).decode("utf-8", errors="replace")
    return Reply(status, _elapsed_ms(started), text, retry_after, None)


def _elapsed_ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
