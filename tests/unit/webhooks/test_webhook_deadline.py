"""The overall deadline of a delivery attempt, against receivers that keep a reply coming."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpcore
import httpx
import pytest

from aia_workers.webhooks.deadline import Deadline, within
from aia_workers.webhooks.http import Reply, new_client, post
from aia_workers.webhooks.ssrf import resolve
from tests.webhook_receiver import Receiver, ReplySpec

LOCAL = ["127.0.0.1"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with new_client() as c:
        yield c


def _post(
    client: httpx.Client, url: str, deadline: Deadline, *, body: bytes = b"{}", timeout: float = 5
) -> Reply:
    return post(
        client,
        resolve(url, allow=LOCAL),
        body,
        {"webhook-id": "msg_1"},
        timeout_seconds=timeout,
        max_body_bytes=1024,
        deadline=deadline,
    )


def _cut(reply: Reply, seconds: float) -> None:
    assert reply.status is None
    assert reply.error == (
        f"deadline exceeded: no complete reply within {seconds:g} s (AIA_WEBHOOK_DEADLINE_SECONDS)"
    )


def test_a_trickling_status_line_and_headers_are_cut_at_the_deadline(
    receiver: Receiver, client: httpx.Client
) -> None:
    # Each byte comes well inside the 5 s read timeout; the whole head would
    # take over 20 s, and then the reply would be a 200.
    receiver.respond(ReplySpec(headers={"X-Pad": "x" * 400}, trickle_head_seconds=0.05))
    deadline = Deadline(0.5)
    _cut(_post(client, receiver.url, deadline), 0.5)
    assert deadline.reached
    # The client is none the worse: the next attempt goes through.
    assert _post(client, receiver.url, Deadline(5)).status == 200


def test_a_deadline_that_passed_during_the_lookup_sends_nothing(
    receiver: Receiver, client: httpx.Client
) -> None:
    deadline = Deadline(0.01)
    while deadline.remaining() > 0:
        time.sleep(0.01)
    _cut(_post(client, receiver.url, deadline), 0.01)
    assert receiver.requests == []


def _server(serve: Callable[[socket.socket], None]) -> tuple[str, threading.Thread]:
    """A raw TCP server on 127.0.0.1 running ``serve`` on its first connection."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                serve(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/hook", thread


# Far more than the socket buffers hold, so the sends block.
BIG_BYTES = 64_000_000


def test_a_receiver_that_never_reads_the_request_is_cut_at_the_deadline(
    client: httpx.Client,
) -> None:
    cut = threading.Event()
    url, server = _server(lambda conn: cut.wait(30))
    try:
        reply = _post(client, url, Deadline(0.5), body=b"x" * BIG_BYTES)
    finally:
        cut.set()
        server.join(30)
    _cut(reply, 0.5)


def test_a_receiver_reading_the_request_slowly_is_cut_at_the_deadline(
    client: httpx.Client,
) -> None:
    received = [0]

    def sip(conn: socket.socket) -> None:
        # Enough each time to let a send through well inside its timeout, so
        # only a deadline held between the sends stops the request: 64 MB at
        # ~6 MB/s would take some 10 s.
        while chunk := conn.recv(65_536):
            received[0] += len(chunk)
            time.sleep(0.01)

    url, server = _server(sip)
    reply = _post(client, url, Deadline(0.5), body=b"x" * BIG_BYTES)
    server.join(30)
    _cut(reply, 0.5)
    assert 0 < received[0] < BIG_BYTES


def test_the_deadline_applies_only_inside_within(receiver: Receiver, client: httpx.Client) -> None:
    spent = Deadline(0.01)
    while spent.remaining() > 0:
        time.sleep(0.01)
    with within(spent), pytest.raises(httpx.TimeoutException):
        client.post(receiver.url, content=b"{}")
    # Outside it the same client and its pooled connections are unbounded again.
    assert client.post(receiver.url, content=b"{}").status_code == 200


def test_the_deadline_only_shortens_waits() -> None:
    deadline = Deadline(60)
    assert deadline.wait(5, httpcore.ReadTimeout) == (5, False)
    wait, shortened = deadline.wait(None, httpcore.ReadTimeout)
    assert shortened
    assert 0 < wait <= 60
    wait, shortened = deadline.wait(600, httpcore.ReadTimeout)
    assert shortened
    assert 0 < wait <= 60
    assert not deadline.reached


@pytest.mark.parametrize("seconds", [0, -1])
def test_a_deadline_must_be_ahead(seconds: float) -> None:
    with pytest.raises(ValueError, match="in the future"):
        Deadline(seconds)
