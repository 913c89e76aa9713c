"""One delivery attempt against a real receiver: statuses, limits, timeouts, pinning."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from aia_workers.webhooks.deadline import Deadline
from aia_workers.webhooks.http import (
    USER_AGENT,
    Reply,
    host_header,
    new_client,
    pinned_url,
    post,
    retry_after_seconds,
)
from aia_workers.webhooks.ssrf import Destination, resolve
from tests.webhook_receiver import Receiver, ReplySpec, closed_port_url

LOCAL = ["127.0.0.1"]
BODY = b'{"type":"ping"}'


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with new_client() as c:
        yield c


def _post(client: httpx.Client, url: str, body: bytes = BODY, **kwargs: float) -> Reply:
    options = {"timeout_seconds": 5.0, "max_body_bytes": 1024, "deadline_seconds": 10.0} | kwargs
    return post(
        client,
        resolve(url, allow=LOCAL),
        body,
        {"webhook-id": "msg_1"},
        timeout_seconds=options["timeout_seconds"],
        max_body_bytes=int(options["max_body_bytes"]),
        deadline=Deadline(options["deadline_seconds"]),
    )


def test_a_200_with_its_body(receiver: Receiver, client: httpx.Client) -> None:
    receiver.respond(ReplySpec(status=200, body=b"thanks \xe2\x9c\x93"))
    reply = _post(client, receiver.url + "?tenant=t1")
    assert reply.status == 200
    assert reply.body == "thanks \u2713"
    assert reply.error is None
    assert reply.retry_after_seconds is None
    assert reply.duration_ms > 0
    (request,) = receiver.wait_for_requests(1)
    assert request.method == "POST"
    assert request.path == "/hook?tenant=t1"
    assert request.body == BODY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["webhook-id"] == "msg_1"


def test_a_500_is_a_status_not_an_error(receiver: Receiver, client: httpx.Client) -> None:
    receiver.default = ReplySpec(status=500, body=b"boom")
    reply = _post(client, receiver.url)
    assert (reply.status, reply.body, reply.error) == (500, "boom", None)


def test_a_redirect_is_not_followed(receiver: Receiver, client: httpx.Client) -> None:
    receiver.respond(ReplySpec(status=302, headers={"Location": "/elsewhere"}, body=b""))
    reply = _post(client, receiver.url)
    assert reply.status == 302
    time.sleep(0.2)
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_long_body_is_cut_at_the_limit(receiver: Receiver, client: httpx.Client) -> None:
    receiver.respond(ReplySpec(body=b"x" * 2_000_000))
    reply = _post(client, receiver.url, max_body_bytes=1000)
    assert reply.status == 200
    assert reply.body == "x" * 1000


def test_a_cut_inside_a_character_is_replaced(receiver: Receiver, client: httpx.Client) -> None:
    receiver.respond(ReplySpec(body="é".encode() * 10))
    reply = _post(client, receiver.url, max_body_bytes=5)
    assert reply.body == "éé\ufffd"


def test_a_zero_limit_reads_no_body(receiver: Receiver, client: httpx.Client) -> None:
    reply = _post(client, receiver.url, max_body_bytes=0)
    assert (reply.status, reply.body) == (200, "")


def test_retry_after_in_seconds(receiver: Receiver, client: httpx.Client) -> None:
    receiver.respond(ReplySpec(status=503, headers={"Retry-After": "120"}))
    reply = _post(client, receiver.url)
    assert (reply.status, reply.retry_after_seconds) == (503, 120.0)


def test_retry_after_as_an_http_date(receiver: Receiver, client: httpx.Client) -> None:
    when = datetime.now(UTC) + timedelta(seconds=60)
    receiver.respond(ReplySpec(status=429, headers={"Retry-After": format_datetime(when, True)}))
    reply = _post(client, receiver.url)
    assert reply.status == 429
    assert reply.retry_after_seconds is not None
    assert 50 <= reply.retry_after_seconds <= 61


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("  30 ", 30.0),
        ("-5", 0.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:29:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:29:00 -0000", 60.0),
    ],
)
def test_retry_after_parsing(value: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
    assert retry_after_seconds(value, now=now) == seconds


def test_a_hanging_receiver_times_out(receiver: Receiver, client: httpx.Client) -> None:
    receiver.respond(ReplySpec(hang=True))
    started = time.monotonic()
    reply = _post(client, receiver.url, timeout_seconds=0.5)
    assert reply.status is None
    assert reply.error == "timeout after 0.5 s"
    assert time.monotonic() - started < 10


def test_a_body_cut_short_keeps_the_status(receiver: Receiver, client: httpx.Client) -> None:
    # Headers promise more than is sent before the server hangs up.
    receiver.respond(ReplySpec(body=b"partial", headers={"Content-Length": "100"}))
    reply = _post(client, receiver.url)
    assert (reply.status, reply.body, reply.error) == (200, "partial", None)


def test_a_trickling_body_stops_at_the_deadline(receiver: Receiver, client: httpx.Client) -> None:
    # Every byte arrives well within the read timeout; only the deadline stops it.
    receiver.respond(ReplySpec(body=b"x" * 100, trickle_seconds=0.1))
    reply = _post(client, receiver.url, deadline_seconds=0.5)
    # The full body would take 10 s; the status alone decides the outcome.
    assert reply.status == 200
    assert reply.error is None
    assert 0 < len(reply.body) < 100


def test_a_closed_port_is_a_connection_error(client: httpx.Client) -> None:
    reply = _post(client, closed_port_url())
    assert (reply.status, reply.error) == (None, "connection refused")


def test_the_host_header_names_the_original_host(receiver: Receiver, client: httpx.Client) -> None:
    url = f"http://localhost:{receiver.port}/hook"
    destination = resolve(url, allow=LOCAL, resolver=lambda host, port: ["127.0.0.1"])
    reply = post(
        client,
        destination,
        BODY,
        {"Host": "evil.example"},
        timeout_seconds=5,
        max_body_bytes=10,
        deadline=Deadline(10),
    )
    assert reply.status == 200
    (request,) = receiver.wait_for_requests(1)
    assert request.headers["host"] == f"localhost:{receiver.port}"


def test_the_url_is_pinned_to_the_checked_address() -> None:
    v6 = Destination("https", "hooks.example.com", 443, "/in?a=1", ("2606:2800::1", "1.2.3.4"))
    assert pinned_url(v6) == "https://[2606:2800::1]:443/in?a=1"
    assert host_header(v6) == "hooks.example.com"
    v4 = Destination("http", "2606:2800::1", 8080, "/", ("2606:2800::1",))
    assert host_header(v4) == "[2606:2800::1]:8080"


def test_https_sends_sni_and_closes_the_connection() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204, stream=httpx.ByteStream(b""))

    destination = Destination("https", "hooks.example.com", 8443, "/in", ("93.184.215.14",))
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        reply = post(
            client,
            destination,
            BODY,
            {},
            timeout_seconds=1,
            max_body_bytes=10,
            deadline=Deadline(5),
        )
    assert reply.status == 204
    (request,) = seen
    assert str(request.url) == "https://93.184.215.14:8443/in"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.headers["connection"] == "close"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


def test_bad_limits_are_refused(client: httpx.Client) -> None:
    destination = Destination("http", "h", 80, "/", ("93.184.215.14",))
    deadline = Deadline(5)
    with pytest.raises(ValueError, match="timeout"):
        post(client, destination, BODY, {}, timeout_seconds=0, max_body_bytes=10, deadline=deadline)
    with pytest.raises(ValueError, match="max_body_bytes"):
        post(client, destination, BODY, {}, timeout_seconds=1, max_body_bytes=-1, deadline=deadline)


def test_the_receiver_closes_promptly_with_a_hanging_handler(client: httpx.Client) -> None:
    receiver = Receiver()
    receiver.default = ReplySpec(hang=True)
    with pytest.raises(httpx.ReadTimeout):
        client.post(receiver.url, content=b"{}", timeout=0.3)
    receiver.wait_for_requests(1)
    started = time.monotonic()
    receiver.close()
    receiver.close()
    assert time.monotonic() - started < 3
