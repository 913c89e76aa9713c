"""Webhooks end to end: API in, a real webhooks worker, a real HTTP receiver out.

The stack retries after 0.3, 0.6 and 0.9 s, times each wait out after 2 s and
each attempt after 4 s, disables an endpoint failing for 4 s, and lets
deliveries reach 127.0.0.1 (tests/conftest.py, WEBHOOK_ENV). Every delivery is verified with the
``standardwebhooks`` reference library.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy
from standardwebhooks import Webhook

from tests.e2e.webhooks.listing import endpoint_attempts, endpoint_messages
from tests.support import Stack, submit, wait_for
from tests.webhook_receiver import Receiver, ReplySpec, closed_port_url

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


@pytest.fixture
def hooks(webhook_stack: Stack) -> Iterator[httpx.Client]:
    with webhook_stack.client() as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def _endpoint(client: httpx.Client, url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = client.post("/v1/webhooks", json={"url": url, "events": events or ["task.failed"]})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _verify(secret: str, request: Any) -> Any:
    return Webhook(secret).verify(request.body, request.headers)


def _wait_message(
    client: httpx.Client, endpoint: dict[str, Any], status: str, timeout: float = 20
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = endpoint_messages(client, endpoint, status=status)
        return found[0] if found else None

    return wait_for(done, timeout, 0.1, f"a {status} message")  # type: ignore[no-any-return]


def test_a_test_event_is_signed_per_the_spec(hooks: httpx.Client, receiver: Receiver) -> None:
    endpoint = _endpoint(hooks, receiver.url)
    assert endpoint["secret"].startswith("whsec_")
    shown = hooks.get(endpoint["links"]["self"]).json()
    assert "secret" not in shown
    sent = hooks.post(f"/v1/webhooks/{endpoint['id']}/test")
    assert sent.status_code == 202, sent.text
    [request] = receiver.wait_for_requests(1)
    assert request.headers["webhook-id"] == sent.json()["id"]
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["webhook-signature"].startswith("v1,")
    body = _verify(endpoint["secret"], request)
    assert body["type"] == "webhook.test"
    assert body["data"]["endpoint_id"] == endpoint["id"]
    with pytest.raises(Exception, match="signature"):
        Webhook(endpoint["secret"]).verify(request.body + b" ", request.headers)
    delivered = _wait_message(hooks, endpoint, "delivered")
    [attempt] = endpoint_attempts(hooks, endpoint)
    assert attempt["status_code"] == 200
    assert attempt["succeeded"] is True
    assert attempt["response_body"] == "ok"
    assert attempt["message_id"] == delivered["id"]


def test_task_succeeded_reaches_a_subscribed_endpoint(
    hooks: httpx.Client, receiver: Receiver
) -> None:
    endpoint = _endpoint(hooks, receiver.url, ["task.succeeded"])
    task = submit(hooks, {"seconds": 0.05, "steps": 1})
    request = wait_for(
        lambda: next(
            (r for r in receiver.requests if task["id"] in r.body.decode()),
            None,
        ),
        30,
        0.1,
        "task.succeeded for the task",
    )
    body = _verify(endpoint["secret"], request)
    assert body["type"] == "task.succeeded"
    assert body["data"]["task_id"] == task["id"]
    assert body["data"]["type"] == "diagnostics.sleep"
    assert body["data"]["result"] is not None


def test_failures_are_retried_on_schedule_with_the_same_id(
    hooks: httpx.Client, receiver: Receiver
) -> None:
    receiver.respond(ReplySpec(500, b"boom"), ReplySpec(503), ReplySpec(200))
    endpoint = _endpoint(hooks, receiver.url)
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    requests = receiver.wait_for_requests(3, timeout=20)
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(requests)]
    # 0.3 s then 0.6 s, each with ±20 % jitter.
    assert gaps[0] >= 0.3 * 0.8
    assert gaps[1] >= 0.6 * 0.8
    _wait_message(hooks, endpoint, "delivered")
    attempts = endpoint_attempts(hooks, endpoint)
    assert [a["status_code"] for a in attempts] == [500, 503, 200]
    assert attempts[0]["response_body"] == "boom"
    assert attempts[0]["next_attempt_at"] is not None
    assert attempts[-1]["next_attempt_at"] is None
    assert {a["trigger"] for a in attempts} == {"scheduled"}


def test_retry_after_is_honoured(hooks: httpx.Client, receiver: Receiver) -> None:
    receiver.respond(ReplySpec(429, headers={"Retry-After": "2"}), ReplySpec(200))
    endpoint = _endpoint(hooks, receiver.url)
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    first, second = receiver.wait_for_requests(2, timeout=20)
    # The schedule says 0.3 s; the receiver asked for 2 s.
    assert second.received_at - first.received_at >= 1.9


def test_dead_letter_resend_and_recover(hooks: httpx.Client, receiver: Receiver) -> None:
    receiver.default = ReplySpec(500)
    endpoint = _endpoint(hooks, receiver.url)
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    failed = _wait_message(hooks, endpoint, "failed")
    # The first attempt and three retries, then kept with its payload.
    assert failed["attempts"] == 4
    assert failed["payload"]["endpoint_id"] == endpoint["id"]
    assert len(receiver.requests) == 4

    receiver.default = ReplySpec(200)
    again = hooks.post(f"/v1/webhooks/{endpoint['id']}/messages/{failed['id']}/resend")
    assert again.status_code == 202, again.text
    _wait_message(hooks, endpoint, "delivered")
    assert receiver.requests[-1].headers["webhook-id"] == failed["id"]
    assert endpoint_attempts(hooks, endpoint)[-1]["trigger"] == "manual"

    # Two more dead letters, then one call sends both again.
    receiver.default = ReplySpec(500)
    since = datetime.now(UTC).isoformat()
    for _ in range(2):
        hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    wait_for(
        lambda: len(endpoint_messages(hooks, endpoint, status="failed")) == 2, 20, 0.1, "2 failed"
    )
    receiver.default = ReplySpec(200)
    recovered = hooks.post(f"/v1/webhooks/{endpoint['id']}/recover", json={"since": since})
    assert recovered.status_code == 202, recovered.text
    assert recovered.json() == {"resent": 2}
    wait_for(
        lambda: len(endpoint_messages(hooks, endpoint, status="delivered")) == 3,
        20,
        0.1,
        "3 delivered",
    )
    assert endpoint_attempts(hooks, endpoint)[-1]["trigger"] == "replay"


def test_gone_disables_the_endpoint(hooks: httpx.Client, receiver: Receiver) -> None:
    receiver.respond(ReplySpec(410))
    endpoint = _endpoint(hooks, receiver.url)
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    _wait_message(hooks, endpoint, "failed")
    view = hooks.get(endpoint["links"]["self"]).json()
    assert view["enabled"] is False
    assert "410" in view["disabled_reason"]
    assert len(receiver.requests) == 1
    refused = hooks.post(f"/v1/webhooks/{endpoint['id']}/test")
    assert refused.status_code == 409
    audit = hooks.get("/v1/audit", params={"action": "endpoint.disabled"}).json()["items"]
    assert endpoint["id"] in [e["detail"]["endpoint_id"] for e in audit]


def test_an_endpoint_failing_too_long_is_disabled(hooks: httpx.Client, receiver: Receiver) -> None:
    receiver.default = ReplySpec(500)
    endpoint = _endpoint(hooks, receiver.url)
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    _wait_message(hooks, endpoint, "failed")
    assert hooks.get(endpoint["links"]["self"]).json()["enabled"] is True
    time.sleep(4.2)  # past AIA_WEBHOOK_DISABLE_AFTER_SECONDS with no success
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    view = wait_for(
        lambda: (v := hooks.get(endpoint["links"]["self"]).json())["enabled"] is False and v,
        20,
        0.1,
        "the endpoint to be disabled",
    )
    assert "no successful delivery" in view["disabled_reason"]
    # Enabled again by a person, it starts afresh.
    enabled = hooks.patch(endpoint["links"]["self"], json={"enabled": True}).json()
    assert enabled["enabled"] is True
    assert enabled["failing_since"] is None


def test_hanging_and_down_receivers_are_attempts_with_errors(
    hooks: httpx.Client, receiver: Receiver
) -> None:
    receiver.respond(ReplySpec(hang=True))
    endpoint = _endpoint(hooks, receiver.url)
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    _wait_message(hooks, endpoint, "delivered")
    first, second = endpoint_attempts(hooks, endpoint)
    assert first["status_code"] is None
    assert "timeout" in first["error"].lower()
    assert second["status_code"] == 200

    down = _endpoint(hooks, closed_port_url())
    hooks.post(f"/v1/webhooks/{down['id']}/test").raise_for_status()
    _wait_message(hooks, down, "failed")
    errors = [a["error"] for a in endpoint_attempts(hooks, down)]
    assert len(errors) == 4
    assert all(e and "refused" in e.lower() for e in errors)


def _set_url_in_database(stack: Stack, endpoint_id: str, url: str) -> None:
    """Write ``url`` straight into the row, as a URL stored before the API checked it."""
    engine = sqlalchemy.create_engine(stack.env["AIA_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(
                sqlalchemy.text("UPDATE webhook_endpoints SET url = :url WHERE id = :id"),
                {"url": url, "id": endpoint_id},
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("host", "why"),
    [("10.255.255.1", "private"), ("127.0.0.2", "loopback"), ("169.254.169.254", "metadata")],
)
def test_deliveries_never_go_where_they_must_not(
    webhook_stack: Stack, hooks: httpx.Client, host: str, why: str
) -> None:
    # The API refuses such a URL now; one stored before it did is still
    # checked, like every host, on each attempt.
    endpoint = _endpoint(hooks, "https://hooks.example.com/aia")
    _set_url_in_database(webhook_stack, endpoint["id"], f"http://{host}:8080/hook")
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    _wait_message(hooks, endpoint, "failed")
    attempts = endpoint_attempts(hooks, endpoint)
    # Checked again on every attempt, each refused before any connection.
    assert len(attempts) == 4
    for attempt in attempts:
        assert attempt["status_code"] is None
        assert attempt["error"].startswith("refused")
        assert why in attempt["error"]


def test_rotation_signs_with_both_secrets_for_a_while(
    hooks: httpx.Client, receiver: Receiver
) -> None:
    endpoint = _endpoint(hooks, receiver.url)
    rotated = hooks.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    [request] = receiver.wait_for_requests(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    _verify(new_secret, request)
    _verify(endpoint["secret"], request)


def test_endpoint_crud_and_bad_input(hooks: httpx.Client, webhook_stack: Stack) -> None:
    endpoint = _endpoint(hooks, "https://hooks.example.com/aia", ["task.failed"])
    changed = hooks.patch(
        endpoint["links"]["self"],
        json={"events": ["task.succeeded", "model.version_created"], "description": "ci"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["model.version_created", "task.succeeded"]
    listed = hooks.get("/v1/webhooks", params={"limit": 200}).json()["items"]
    assert endpoint["id"] in [e["id"] for e in listed]
    kinds = {t["name"] for t in hooks.get("/v1/webhooks/event-types").json()["items"]}
    assert {"task.succeeded", "task.failed", "task.cancelled"} <= kinds
    assert {"model.version_created", "model.alias_changed", "model.drift_detected"} <= kinds

    for body in (
        {"url": "ftp://example.com/x", "events": ["task.failed"]},
        {"url": "https://user:pw@example.com/x", "events": ["task.failed"]},
        {"url": "https://example.com/x", "events": ["no.such.event"]},
        {"url": "https://example.com/x", "events": []},
    ):
        bad = hooks.post("/v1/webhooks", json=body)
        assert bad.status_code == 422, body
        assert bad.headers["content-type"] == PROBLEM

    # Another tenant sees none of it; an operator may not manage webhooks.
    other = webhook_stack.create_key("admin", tenant="other")
    with webhook_stack.client(other) as stranger:
        assert stranger.get(endpoint["links"]["self"]).status_code == 404
    operator = webhook_stack.create_key("operator")
    with webhook_stack.client(operator) as client:
        assert client.get("/v1/webhooks").status_code == 403

    assert hooks.delete(endpoint["links"]["self"]).status_code == 204
    assert hooks.get(endpoint["links"]["self"]).status_code == 404


def test_a_worker_killed_mid_delivery_delivers_later_with_the_same_id(
    webhook_stack: Stack, hooks: httpx.Client, receiver: Receiver
) -> None:
    receiver.respond(ReplySpec(hang=True))
    receiver.default = ReplySpec(200)
    endpoint = _endpoint(hooks, receiver.url)
    worker = next(p for p in webhook_stack.processes if p.name == "worker-webhooks")
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    [first] = receiver.wait_for_requests(1)
    os.killpg(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait(10)
    webhook_stack.processes.remove(worker)
    webhook_stack.start_worker("webhooks", "webhooks", pool="threads", concurrency=8)
    _wait_message(hooks, endpoint, "delivered", timeout=40)
    later = [r for r in receiver.requests if r is not first]
    assert later
    assert {r.headers["webhook-id"] for r in later} == {first.headers["webhook-id"]}


def test_deliveries_and_retries_with_rabbitmq_as_the_broker(
    rabbitmq_webhook_stack: Stack, receiver: Receiver
) -> None:
    # A test event, not a task: the RabbitMQ stacks share the broker's queues,
    # and another stack's default worker could take a task of this one.
    receiver.respond(ReplySpec(500))
    with rabbitmq_webhook_stack.client() as client:
        endpoint = _endpoint(client, receiver.url)
        sent = client.post(f"/v1/webhooks/{endpoint['id']}/test")
        assert sent.status_code == 202, sent.text
        first, second = receiver.wait_for_requests(2, timeout=30)
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == sent.json()["id"]
        assert _verify(endpoint["secret"], second)["type"] == "webhook.test"
        _wait_message(client, endpoint, "delivered")


def test_metrics_count_messages_and_disabled_endpoints(
    hooks: httpx.Client, receiver: Receiver
) -> None:
    def scraped() -> dict[str, float]:
        text = hooks.get("/metrics").text
        values = {}
        for line in text.splitlines():
            if line.startswith(("aia_webhook_messages{", "aia_webhook_endpoints_disabled ")):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    before = scraped()
    receiver.respond(ReplySpec(200), ReplySpec(410))
    endpoint = _endpoint(hooks, receiver.url)
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    _wait_message(hooks, endpoint, "delivered")
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    _wait_message(hooks, endpoint, "failed")
    after = scraped()
    delivered = 'aia_webhook_messages{status="delivered"}'
    failed = 'aia_webhook_messages{status="failed"}'
    # Other tests' messages may settle meanwhile: at least this test's own.
    assert after[delivered] >= before.get(delivered, 0) + 1
    assert after[failed] >= before.get(failed, 0) + 1
    disabled = "aia_webhook_endpoints_disabled"
    assert after[disabled] >= before.get(disabled, 0) + 1


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("169.254.169.254", "metadata"),
        ("[::ffff:127.0.0.2]", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("[::1]", "loopback"),
        ("2130706434", "loopback"),
        ("0x7f.2", "loopback"),
        ("0177.0.0.2", "loopback"),
        ("10.0.0.1", "private"),
        ("[fd00:ec2::254]", "metadata"),
    ],
)
def test_a_forbidden_address_is_refused_at_registration(
    hooks: httpx.Client, host: str, why: str
) -> None:
    url = f"http://{host}:8080/hook"

    def refused(response: httpx.Response) -> None:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert problem["type"] == "urn:aia:problem:webhook-url-blocked"
        assert problem["rule"] == why
        assert f"which is blocked ({why})" in problem["detail"]
        assert "AIA_WEBHOOK_ALLOWED_NETWORKS" in problem["detail"]
        [error] = problem["errors"]
        assert error["pointer"] == "/url"

    refused(hooks.post("/v1/webhooks", json={"url": url, "events": ["task.failed"]}))
    endpoint = _endpoint(hooks, "https://hooks.example.com/aia")
    refused(hooks.patch(endpoint["links"]["self"], json={"url": url}))
    assert hooks.get(endpoint["links"]["self"]).json()["url"] == "https://hooks.example.com/aia"


def test_allowed_networks_exempt_an_address_in_any_form(
    hooks: httpx.Client, receiver: Receiver
) -> None:
    # The stack allows 127.0.0.1; 2130706433 is that address, spelled as one number.
    endpoint = _endpoint(hooks, f"http://2130706433:{receiver.port}/hook")
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    [request] = receiver.wait_for_requests(1)
    _verify(endpoint["secret"], request)


def test_a_host_name_is_checked_at_each_delivery(hooks: httpx.Client) -> None:
    # Accepted: what a name resolves to is only known when a delivery looks it up.
    endpoint = _endpoint(hooks, "http://no-such-host.invalid:8080/hook")
    hooks.post(f"/v1/webhooks/{endpoint['id']}/test").raise_for_status()
    _wait_message(hooks, endpoint, "failed")
    attempts = endpoint_attempts(hooks, endpoint)
    assert len(attempts) == 4
    for attempt in attempts:
        assert attempt["status_code"] is None
        assert attempt["error"].startswith("refused")
        assert "did not resolve" in attempt["error"]


def test_a_tenant_may_register_only_so_many_endpoints(webhook_stack: Stack) -> None:
    # A tenant of its own, so other tests' endpoints do not count.
    key = webhook_stack.create_key("admin", tenant=f"cap-{uuid.uuid4().hex[:8]}")
    with webhook_stack.client(key) as client:
        made = [_endpoint(client, f"https://hooks.example.com/{i}") for i in range(50)]
        refused = client.post(
            "/v1/webhooks", json={"url": "https://hooks.example.com/x", "events": ["task.failed"]}
        )
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == PROBLEM
        problem = refused.json()
        assert problem["type"] == "urn:aia:problem:webhook-endpoint-limit"
        assert problem["limit"] == 50
        assert "50 webhook endpoints" in problem["detail"]
        assert "AIA_WEBHOOK_TENANT_MAX_ENDPOINTS" in problem["detail"]
        listed = client.get("/v1/webhooks", params={"limit": 200}).json()["items"]
        assert len(listed) == 50
        # Room again once one goes; and the cap is this tenant's alone.
        assert client.delete(made[0]["links"]["self"]).status_code == 204
        _endpoint(client, "https://hooks.example.com/x")
    with webhook_stack.client() as others:
        _endpoint(others, "https://hooks.example.com/other-tenant")


def test_endpoint_changes_are_audited_without_secrets(hooks: httpx.Client) -> None:
    endpoint = _endpoint(hooks, "https://hooks.example.com/aia?token=t0p", ["task.failed"])
    changed = hooks.patch(
        endpoint["links"]["self"],
        json={"url": "https://other.example.com/in", "events": ["task.succeeded"]},
    )
    assert changed.status_code == 200, changed.text
    rotated = hooks.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    assert hooks.delete(endpoint["links"]["self"]).status_code == 204

    actions = ["endpoint.create", "endpoint.update", "endpoint.rotate_secret", "endpoint.delete"]
    response = hooks.get("/v1/audit", params={"action": actions, "limit": 200})
    assert response.status_code == 200, response.text
    entries = {
        e["action"]: e
        for e in reversed(response.json()["items"])
        if e["detail"]["endpoint_id"] == endpoint["id"]
    }
    assert set(entries) == set(actions)
    for entry in entries.values():
        assert entry["outcome"] == "success"
        assert entry["actor"].startswith("key:")
        assert entry["client_address"] == "127.0.0.1"
    created = entries["endpoint.create"]["detail"]
    # A URL's query may hold the receiver's token: the log shows that there was one.
    assert created["url"] == "https://hooks.example.com/aia?..."
    assert created["events"] == ["task.failed"]
    assert entries["endpoint.update"]["detail"]["changes"] == {
        "url": {"from": "https://hooks.example.com/aia?...", "to": "https://other.example.com/in"},
        "events": {"from": ["task.failed"], "to": ["task.succeeded"]},
    }
    rotation = entries["endpoint.rotate_secret"]["detail"]
    assert rotation["previous_secret_expires_at"] is not None
    assert entries["endpoint.delete"]["detail"]["url"] == "https://other.example.com/in"
    logged = response.text
    for secret in (endpoint["secret"], rotated.json()["secret"]):
        assert secret not in logged
        assert secret.removeprefix("whsec_") not in logged
    assert "t0p" not in logged
