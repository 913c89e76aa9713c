"""Streams in bounds: a cap per principal, tickets instead of query credentials, and
open streams ended when their credentials are revoked or expire.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support import TEST_PASSWORD, Stack, private_stack, submit, wait_for

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
# How long a test waits for what should come within seconds, before it calls it missing.
_PATIENCE = 30.0


# -- helpers ---------------------------------------------------------------------------


def _bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def _ws_url(base: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + "/v1/ws" + (f"?{query}" if query else "")


def _waiting_task(stack: Stack, key: str) -> str:
    """A task that stays queued for minutes, so a stream of it stays open."""
    with stack.client(key) as client:
        return str(submit(client, {"seconds": 0}, countdown=600)["id"])


def _new_key(stack: Stack, role: str = "operator") -> tuple[str, str]:
    """A new API key made through the API by the stack's admin: (its id, the key)."""
    with stack.client() as admin:
        response = admin.post(
            "/v1/keys", json={"name": f"streams-{uuid.uuid4().hex[:8]}", "role": role}
        )
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["key"]


class SseReader:
    """An open SSE response read one event block at a time, within a bound."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def _read(self, patience: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + patience
        block: dict[str, str] = {}
        for line in self._lines:
            if time.monotonic() > deadline:
                raise AssertionError(f"no event within {patience} s")
            if line == "":
                if "data" in block:
                    return {
                        "event": block.get("event", "message"),
                        "data": json.loads(block["data"]),
                    }
                block = {}
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            block[field] = value.removeprefix(" ")
        return None

    def next_event(self, patience: float = _PATIENCE) -> dict[str, Any]:
        """The next event: ``{"event", "data"}``."""
        event = self._read(patience)
        assert event is not None, "the stream ended"
        return event

    def ended(self, patience: float = _PATIENCE) -> bool:
        """True when the stream ends with no further event."""
        return self._read(patience) is None


@contextmanager
def _sse(url: str, headers: dict[str, str] | None = None) -> Iterator[SseReader]:
    """An SSE stream that must open (200)."""
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=_PATIENCE)) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200, response.read()
        yield SseReader(response)


def _subscribe(ws: ClientConnection, task_id: str) -> None:
    ws.send(json.dumps({"action": "subscribe", "task_id": task_id}))
    assert json.loads(ws.recv(timeout=_PATIENCE))["type"] == "subscribed"
    assert json.loads(ws.recv(timeout=_PATIENCE))["event"] == "queued"


def _ended_with(ws: ClientConnection) -> tuple[dict[str, Any], int]:
    """The error message a WebSocket got before the server closed it, and the close code."""
    message = json.loads(ws.recv(timeout=_PATIENCE))
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=_PATIENCE)
    assert closed.value.rcvd is not None
    return message, closed.value.rcvd.code


def _admitted(url: str, headers: dict[str, str]) -> bool:
    """True when an SSE stream at ``url`` opens (it is closed again at once)."""
    with httpx.Client(timeout=10) as client, client.stream("GET", url, headers=headers) as response:
        return response.status_code == 200


def _ticket(base: str, credential: str) -> str:
    response = httpx.post(f"{base}/v1/streams/tickets", headers=_bearer(credential))
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    return str(response.json()["ticket"])


@pytest.fixture
def capped(tmp_path: Path, redis_url: str) -> Iterator[Stack]:
    """A private stack whose principals may hold two streams; slots lapse after 2 s."""
    stack = private_stack(
        tmp_path,
        redis_url,
        role="admin",
        env={
            "AIA_STREAM_MAX_CONNECTIONS": "2",
            "AIA_STREAM_LEASE_SECONDS": "2",
            "AIA_STREAM_TICKET_TTL_SECONDS": "1",
        },
    )
    yield stack
    stack.stop()


# -- the cap ---------------------------------------------------------------------------


def test_a_principal_holds_at_most_its_streams_across_api_processes(capped: Stack) -> None:
    key = capped.api_key
    task = _waiting_task(capped, key)
    _, other_url = capped.start_api()
    events = f"/v1/tasks/{task}/events"
    with ExitStack() as held:
        held.enter_context(_sse(capped.api_url + events, _bearer(key)))
        ws = held.enter_context(connect(_ws_url(other_url), additional_headers=_bearer(key)))
        _subscribe(ws, task)

        refused = httpx.get(capped.api_url + events, headers=_bearer(key))
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["type"] == "urn:aia:problem:too-many-streams"
        assert int(refused.headers["retry-after"]) > 0
        with connect(_ws_url(other_url), additional_headers=_bearer(key)) as third:
            message, code = _ended_with(third)
        assert (message["status"], code) == (429, 1013)

        # The cap is per principal: another key of the tenant is not held back.
        _, other_key = _new_key(capped)
        with _sse(other_url + events, _bearer(other_key)) as stream:
            assert stream.next_event()["event"] == "queued"

        ws.close()
        # The closed WebSocket's slot is free again, on the other process too.
        wait_for(
            lambda: _admitted(capped.api_url + events, _bearer(key)),
            _PATIENCE,
            0.2,
            "the closed WebSocket's slot",
        )


def test_the_slots_of_a_killed_api_process_come_back(capped: Stack) -> None:
    key = capped.api_key
    task = _waiting_task(capped, key)
    doomed, doomed_url = capped.start_api()
    events = f"/v1/tasks/{task}/events"
    with ExitStack() as held:
        for _ in range(2):
            ws = held.enter_context(connect(_ws_url(doomed_url), additional_headers=_bearer(key)))
            _subscribe(ws, task)
        assert httpx.get(capped.api_url + events, headers=_bearer(key)).status_code == 429
        doomed.kill()
    wait_for(
        lambda: _admitted(capped.api_url + events, _bearer(key)),
        _PATIENCE,
        0.2,
        "the dead process's slots to lapse",
    )


def test_a_websocket_follows_a_bounded_number_of_tasks(tmp_path: Path, redis_url: str) -> None:
    stack = private_stack(tmp_path, redis_url, env={"AIA_WS_MAX_SUBSCRIPTIONS": "2"})
    try:
        tasks = [_waiting_task(stack, stack.api_key) for _ in range(3)]
        with connect(_ws_url(stack.api_url), additional_headers=_bearer(stack.api_key)) as ws:
            _subscribe(ws, tasks[0])
            _subscribe(ws, tasks[1])
            ws.send(json.dumps({"action": "subscribe", "task_id": tasks[2]}))
            refused = json.loads(ws.recv(timeout=_PATIENCE))
            assert (refused["type"], refused["status"], refused["task_id"]) == (
                "error",
                429,
                tasks[2],
            )
            # Room again once one is let go; the connection itself stayed open.
            ws.send(json.dumps({"action": "unsubscribe", "task_id": tasks[0]}))
            assert json.loads(ws.recv(timeout=_PATIENCE))["type"] == "unsubscribed"
            _subscribe(ws, tasks[2])
    finally:
        stack.stop()


# -- revocation and expiry -------------------------------------------------------------


def test_revoking_a_key_ends_its_open_streams_on_every_api_process(redis_stack: Stack) -> None:
    key_id, key = _new_key(redis_stack)
    task = _waiting_task(redis_stack, key)
    other, other_url = redis_stack.start_api()
    try:
        with (
            _sse(f"{redis_stack.api_url}/v1/tasks/{task}/events", _bearer(key)) as stream,
            connect(_ws_url(redis_stack.api_url), additional_headers=_bearer(key)) as ws,
            connect(_ws_url(other_url), additional_headers=_bearer(key)) as ws_elsewhere,
        ):
            assert stream.next_event()["event"] == "queued"
            _subscribe(ws, task)
            _subscribe(ws_elsewhere, task)
            # Revoked through the first process: the second learns it from Redis.
            with redis_stack.client() as admin:
                assert admin.delete(f"/v1/keys/{key_id}").status_code == 204

            error = stream.next_event()
            assert error["event"] == "error"
            assert error["data"]["status"] == 401
            assert error["data"]["type"] == "urn:aia:problem:unauthenticated"
            assert stream.ended()
            for socket in (ws, ws_elsewhere):
                message, code = _ended_with(socket)
                assert (message["type"], message["status"], code) == ("error", 401, 1008)
    finally:
        other.stop()


def _short_token(stack: Stack, seconds: int) -> str:
    """An operator's access token that expires in ``seconds`` (signed with the stack's key)."""
    username = stack.create_user("operator")
    login = httpx.post(
        f"{stack.api_url}/v1/auth/token", json={"username": username, "password": TEST_PASSWORD}
    )
    assert login.status_code == 200, login.text
    claims = jwt.decode(login.json()["access_token"], options={"verify_signature": False})
    claims["exp"] = int(time.time()) + seconds
    return jwt.encode(claims, stack.env["AIA_SECRET_KEY"], algorithm="HS256")


def test_streams_end_when_their_access_token_expires(redis_stack: Stack) -> None:
    token = _short_token(redis_stack, 8)
    base = redis_stack.api_url
    task = _waiting_task(redis_stack, redis_stack.api_key)
    ticket = _ticket(base, token)
    with (
        _sse(f"{base}/v1/tasks/{task}/events", _bearer(token)) as stream,
        connect(_ws_url(base, f"ticket={ticket}")) as ws,
    ):
        assert stream.next_event()["event"] == "queued"
        _subscribe(ws, task)
        error = stream.next_event()
        assert error["data"]["status"] == 401
        assert "expired" in error["data"]["detail"]
        assert stream.ended()
        message, code = _ended_with(ws)
        assert (message["status"], code) == (401, 1008)
        assert "expired" in message["detail"]


# -- tickets -----------------------------------------------------------------------------


def test_a_ticket_opens_one_stream_once(redis_stack: Stack) -> None:
    base = redis_stack.api_url
    key = redis_stack.create_key("viewer")
    task = _waiting_task(redis_stack, redis_stack.api_key)
    ticket = _ticket(base, key)
    # Redis holds neither the ticket nor the key it stands for.
    stored = redis_stack.redis()
    for name in stored.scan_iter("aia:stream-ticket:*"):
        assert ticket not in name
        assert key not in str(stored.get(name))
        assert 0 < stored.ttl(name) <= 30

    url = f"{base}/v1/tasks/{task}/events?ticket={ticket}"
    with _sse(url) as stream:
        assert stream.next_event()["event"] == "queued"
    again = httpx.get(url)
    assert again.status_code == 401
    assert again.headers["content-type"] == PROBLEM
    assert "used or expired" in again.json()["detail"]

    ticket = _ticket(base, key)
    with connect(_ws_url(base, f"ticket={ticket}")) as ws:
        _subscribe(ws, task)
    with pytest.raises(InvalidStatus):
        connect(_ws_url(base, f"ticket={ticket}"), open_timeout=10)
    # A ticket is for streams only.
    assert httpx.get(f"{base}/v1/tasks?ticket={_ticket(base, key)}").status_code == 401


def test_an_unused_ticket_expires(capped: Stack) -> None:
    base = capped.api_url
    task = _waiting_task(capped, capped.api_key)
    ticket = _ticket(base, capped.api_key)
    stored = capped.redis()
    wait_for(
        lambda: not list(stored.scan_iter("aia:stream-ticket:*")),
        _PATIENCE,
        0.1,
        "the ticket to lapse",
    )
    response = httpx.get(f"{base}/v1/tasks/{task}/events?ticket={ticket}")
    assert response.status_code == 401, response.text


def test_credentials_in_the_query_string_are_refused(redis_stack: Stack) -> None:
    base = redis_stack.api_url
    key = redis_stack.api_key
    with pytest.raises(InvalidStatus):
        connect(_ws_url(base, f"access_token={key}"), open_timeout=10)
    task = _waiting_task(redis_stack, key)
    response = httpx.get(f"{base}/v1/tasks/{task}/events?access_token={key}")
    assert response.status_code == 401
    assert "ticket" in response.json()["detail"]


def test_tickets_and_tokens_stay_out_of_the_access_log(redis_stack: Stack) -> None:
    key = redis_stack.api_key
    proc, base = redis_stack.start_api(log_level="info")
    try:
        task = _waiting_task(redis_stack, key)
        sse_ticket, ws_ticket = _ticket(base, key), _ticket(base, key)
        with _sse(f"{base}/v1/tasks/{task}/events?ticket={sse_ticket}") as stream:
            assert stream.next_event()["event"] == "queued"
        with connect(_ws_url(base, f"ticket={ws_ticket}")) as ws:
            _subscribe(ws, task)
        httpx.get(f"{base}/v1/tasks/{task}/events?access_token={key}")
        with pytest.raises(InvalidStatus):
            connect(_ws_url(base, f"access_token={key}"), open_timeout=10)
        wait_for(lambda: proc.output().count("ticket=***") >= 2, 10, what="the access log")
    finally:
        proc.stop()
    log = proc.output()
    for secret in (sse_ticket, ws_ticket, key):
        assert secret not in log
    assert "access_token=***" in log
