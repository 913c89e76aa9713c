"""Agents' mailboxes end to end: messages posted over HTTP and sent by runs, read in order per
sender by a run of the plugin's ``inbox`` type, redelivered after a failed run, followed over
SSE with resume, kept per tenant, and recorded as ``agent.message`` webhooks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import Stack, sse_events, wait_status

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(agents_stack: Stack) -> Iterator[httpx.Client]:
    with agents_stack.client() as client:
        yield client


def _create(api: httpx.Client, type_name: str) -> dict[str, Any]:
    body = {"name": f"{type_name}-{uuid.uuid4().hex[:8]}", "type": type_name}
    response = api.post("/v1/agents", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _post(api: httpx.Client, agent_id: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return api.post(f"/v1/agents/{agent_id}/messages", json={"body": body}, **kw)


def _send(api: httpx.Client, agent_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = _post(api, agent_id, body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _run(api: httpx.Client, agent_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"/v1/agents/{agent_id}/runs", json={"input": inputs})
    assert response.status_code == 202, response.text
    return wait_status(api, response.json()["id"], {"succeeded", "failed", "cancelled"}, 60)


def _pending(api: httpx.Client, agent_id: str) -> list[dict[str, Any]]:
    page = api.get(f"/v1/agents/{agent_id}/messages", params={"pending": "true"})
    assert page.status_code == 200, page.text
    return page.json()["items"]  # type: ignore[no-any-return]


def test_a_run_reads_its_messages_in_order_per_sender_and_acks_them(
    agents_stack: Stack, api: httpx.Client
) -> None:
    inbox = _create(api, "inbox")
    with agents_stack.client(agents_stack.create_key("operator")) as other:
        sent = [
            _send(api, inbox["id"], {"n": 1}),
            _send(other, inbox["id"], {"n": 2}),
            _send(api, inbox["id"], {"n": 3}),
        ]
    assert [(m["seq"], m["position"]) for m in sent] == [(1, 1), (1, 2), (2, 3)]
    assert sent[0]["sender"].startswith("key:")
    assert sent[0]["sender"] != sent[1]["sender"]
    assert len(_pending(api, inbox["id"])) == 3
    run = _run(api, inbox["id"], {})
    assert run["status"] == "succeeded", run
    read = run["result"]["read"]
    assert [(m["sender"], m["seq"], m["body"]) for m in read] == [
        (sent[0]["sender"], 1, {"n": 1}),
        (sent[1]["sender"], 1, {"n": 2}),
        (sent[0]["sender"], 2, {"n": 3}),
    ]
    assert sorted(run["result"]["acked"]) == sorted(m["id"] for m in sent)
    assert _pending(api, inbox["id"]) == []
    listed = api.get(f"/v1/agents/{inbox['id']}/messages", params={"limit": 2}).json()
    assert [m["position"] for m in listed["items"]] == [1, 2]
    assert {m["acked_by"] for m in listed["items"]} == {run["id"]}
    rest = api.get(listed["links"]["next"]).json()
    assert [m["position"] for m in rest["items"]] == [3]
    # A second run finds nothing left.
    assert _run(api, inbox["id"], {})["result"]["read"] == []


def test_messages_a_failed_run_read_go_to_the_next_run_again(api: httpx.Client) -> None:
    inbox = _create(api, "inbox")
    for n in range(2):
        _send(api, inbox["id"], {"n": n})
    failed = _run(api, inbox["id"], {"ack": False, "fail": True})
    assert failed["status"] == "failed"
    assert [m["deliveries"] for m in _pending(api, inbox["id"])] == [1, 1]
    # Succeeding without acking, as this type may: still pending.
    kept = _run(api, inbox["id"], {"ack": False})
    assert [m["deliveries"] for m in kept["result"]["read"]] == [2, 2]
    done = _run(api, inbox["id"], {})
    assert [(m["body"], m["deliveries"]) for m in done["result"]["read"]] == [
        ({"n": 0}, 3),
        ({"n": 1}, 3),
    ]
    assert _pending(api, inbox["id"]) == []


def test_an_agent_sends_to_another_by_name(api: httpx.Client) -> None:
    inbox = _create(api, "inbox")
    relay = _create(api, "relay")
    bodies = [{"step": "one"}, {"step": "two"}, {"step": "three"}]
    sent = _run(api, relay["id"], {"to": inbox["name"], "bodies": bodies})
    assert sent["status"] == "succeeded", sent
    read = _run(api, inbox["id"], {})["result"]["read"]
    assert [m["id"] for m in read] == sent["result"]["sent"]
    assert [(m["sender"], m["seq"], m["body"]) for m in read] == [
        (f"agent:{relay['id']}", i + 1, body) for i, body in enumerate(bodies)
    ]
    nowhere = _run(api, relay["id"], {"to": "no-such-agent", "bodies": [{"x": 1}]})
    assert nowhere["status"] == "failed"
    assert "no agent 'no-such-agent'" in nowhere["error"]["message"]


def test_the_mailbox_stream_replays_follows_live_and_resumes(
    agents_stack: Stack, api: httpx.Client
) -> None:
    inbox = _create(api, "inbox")
    path = f"/v1/agents/{inbox['id']}/messages/events"
    first = _send(api, inbox["id"], {"n": 1})
    with agents_stack.client() as streaming:
        stream = sse_events(streaming, path)
        replayed = next(stream)
        assert (replayed["id"], replayed["event"]) == ("1", "message")
        assert replayed["data"]["id"] == first["id"]
        # Subscribed before it replayed: what comes now arrives live.
        second = _send(api, inbox["id"], {"n": 2})
        live = next(stream)
        assert (live["id"], live["data"]["id"], live["data"]["body"]) == (
            "2",
            second["id"],
            {"n": 2},
        )
        stream.close()
    third = _send(api, inbox["id"], {"n": 3})
    with agents_stack.client() as streaming:
        resumed = sse_events(streaming, path, headers={"Last-Event-ID": "1"})
        assert [next(resumed)["data"]["id"] for _ in range(2)] == [second["id"], third["id"]]
        resumed.close()
    bad = api.get(path, headers={"Last-Event-ID": "x"})
    assert bad.status_code == 400, bad.text


def test_a_ticket_opens_a_mailbox_stream_which_ends_when_its_key_is_revoked(
    agents_stack: Stack, api: httpx.Client
) -> None:
    inbox = _create(api, "inbox")
    first = _send(api, inbox["id"], {"n": 1})
    made = api.post("/v1/keys", json={"name": f"mailbox-{uuid.uuid4().hex[:8]}", "role": "viewer"})
    assert made.status_code == 201, made.text
    key_id, key = made.json()["id"], made.json()["key"]
    ticket = httpx.post(
        f"{agents_stack.api_url}/v1/streams/tickets", headers={"Authorization": f"Bearer {key}"}
    )
    assert ticket.status_code == 201, ticket.text
    path = f"/v1/agents/{inbox['id']}/messages/events?ticket={ticket.json()['ticket']}"
    # No credentials but the ticket.
    with httpx.Client(base_url=agents_stack.api_url, timeout=30) as browser:
        stream = sse_events(browser, path)
        assert next(stream)["data"]["id"] == first["id"]
        assert api.delete(f"/v1/keys/{key_id}").status_code == 204
        error = next(stream)
        assert (error["event"], error["data"]["status"]) == ("error", 401)
        assert list(stream) == []


def test_tenants_neither_see_nor_reach_each_others_mailboxes(
    agents_stack: Stack, api: httpx.Client
) -> None:
    inbox = _create(api, "inbox")
    _send(api, inbox["id"], {"secret": True})
    with agents_stack.client(agents_stack.create_key("admin", tenant="other")) as other:
        base = f"/v1/agents/{inbox['id']}/messages"
        assert _post(other, inbox["id"], {"n": 1}).status_code == 404
        assert other.get(base).status_code == 404
        assert other.get(f"{base}/events").status_code == 404
        # A run in the other tenant cannot send to it by id or name.
        relay = _create(other, "relay")
        for target in (inbox["id"], inbox["name"]):
            run = _run(other, relay["id"], {"to": target, "bodies": [{"n": 1}]})
            assert run["status"] == "failed"
    assert len(_pending(api, inbox["id"])) == 1


def test_idempotency_keys_size_limit_and_roles(agents_stack: Stack, api: httpx.Client) -> None:
    inbox = _create(api, "inbox")
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    first = _post(api, inbox["id"], {"n": 1}, headers=key)
    again = _post(api, inbox["id"], {"n": 1}, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    clash = _post(api, inbox["id"], {"n": 2}, headers=key)
    assert clash.status_code == 409, clash.text
    assert clash.json()["type"] == "urn:aia:problem:idempotency-key-reused"
    huge = _post(api, inbox["id"], {"text": "x" * 70_000})
    assert huge.status_code == 413, huge.text
    assert huge.headers["content-type"] == "application/problem+json"
    assert api.get(f"/v1/agents/{inbox['id']}/messages?pending=maybe").status_code == 422
    with agents_stack.client(agents_stack.create_key("viewer")) as viewer:
        assert viewer.get(f"/v1/agents/{inbox['id']}/messages").status_code == 200
        assert _post(viewer, inbox["id"], {"n": 3}).status_code == 403
    assert len(_pending(api, inbox["id"])) == 1


def test_each_message_is_recorded_as_an_agent_message_webhook(api: httpx.Client) -> None:
    hook = api.post(
        "/v1/webhooks",
        json={"url": "https://example.com/aia-messages", "events": ["agent.message"]},
    )
    assert hook.status_code == 201, hook.text
    endpoint = hook.json()["id"]
    inbox = _create(api, "inbox")
    relay = _create(api, "relay")
    posted = _send(api, inbox["id"], {"hello": "there"})
    relayed = _run(api, relay["id"], {"to": inbox["id"], "bodies": [{"from": "relay"}]})
    page = api.get(f"/v1/webhooks/{endpoint}/messages?event_type=agent.message&limit=100")
    assert page.status_code == 200, page.text
    payloads = {
        m["payload"]["message_id"]: m["payload"]
        for m in page.json()["items"]
        if m["payload"]["agent_id"] == inbox["id"]
    }
    assert set(payloads) == {posted["id"], *relayed["result"]["sent"]}
    mine = payloads[posted["id"]]
    assert (mine["agent"], mine["sender"], mine["seq"], mine["body"]) == (
        inbox["name"],
        posted["sender"],
        1,
        {"hello": "there"},
    )
    theirs = payloads[relayed["result"]["sent"][0]]
    assert (theirs["sender"], theirs["body"]) == (f"agent:{relay['id']}", {"from": "relay"})
    assert api.delete(f"/v1/webhooks/{endpoint}").status_code == 204
