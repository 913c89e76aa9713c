"""Security headers on every kind of response, and a /status that keeps exception text to itself."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import httpx
import pytest

from aia_api.http.security_headers import API_POLICY
from tests.support import Stack, free_port, private_stack, submit, wait_status

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def _assert_secured(response: httpx.Response, policy: str = API_POLICY) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == policy
    assert response.headers["referrer-policy"] == "no-referrer"
    # Plain HTTP here: HSTS would mean nothing, and is not sent.
    assert "strict-transport-security" not in response.headers


def test_json_problem_and_stream_responses_carry_the_headers(redis_stack: Stack) -> None:
    base = redis_stack.api_url
    with redis_stack.client() as api:
        task = submit(api, {"seconds": 0})
        wait_status(api, task["id"], {"succeeded"})
        json_ok = api.get(f"/v1/tasks/{task['id']}")
        assert json_ok.headers["content-type"] == "application/json"
        _assert_secured(json_ok)
        not_found = api.get("/v1/tasks/no-such-task")
        assert (not_found.status_code, not_found.headers["content-type"]) == (404, PROBLEM)
        _assert_secured(not_found)
        with api.stream("GET", task["links"]["events"]) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            _assert_secured(stream)
    # Refused by the authentication middleware, before any route.
    refused = httpx.get(f"{base}/v1/tasks")
    assert (refused.status_code, refused.headers["content-type"]) == (401, PROBLEM)
    _assert_secured(refused)
    _assert_secured(httpx.get(f"{base}/health"))
    _assert_secured(httpx.get(f"{base}/openapi.json"))


def test_the_docs_page_may_use_its_own_stylesheet_and_nothing_else(redis_stack: Stack) -> None:
    page = httpx.get(f"{redis_stack.api_url}/docs")
    [style] = re.findall(r"<style>(.*?)</style>", page.text, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    policy = page.headers["content-security-policy"]
    assert f"style-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    _assert_secured(page, policy)


def test_hsts_only_when_a_trusted_proxy_says_the_request_came_over_tls(
    redis_stack: Stack,
) -> None:
    # FORWARDED_ALLOW_IPS is uvicorn's list of trusted proxies, AIA_TRUSTED_PROXIES the API's.
    trusting, trusting_url = redis_stack.start_api(
        env={"FORWARDED_ALLOW_IPS": "127.0.0.1", "AIA_TRUSTED_PROXIES": '["127.0.0.1/32"]'}
    )
    # 192.0.2.1 is a documentation address: nothing here is that proxy.
    distrusting, distrusting_url = redis_stack.start_api(
        env={"FORWARDED_ALLOW_IPS": "192.0.2.1", "AIA_TRUSTED_PROXIES": "[]"}
    )
    try:
        tls = {"X-Forwarded-Proto": "https"}
        assert "strict-transport-security" not in httpx.get(f"{trusting_url}/health").headers
        for response in (
            httpx.get(f"{trusting_url}/health", headers=tls),
            httpx.get(f"{trusting_url}/v1/tasks", headers=tls),  # a 401 problem
        ):
            assert response.headers["strict-transport-security"] == "max-age=31536000"
            assert response.headers["x-content-type-options"] == "nosniff"
        ignored = httpx.get(f"{distrusting_url}/health", headers=tls)
        assert "strict-transport-security" not in ignored.headers
    finally:
        trusting.stop()
        distrusting.stop()


def test_status_names_the_failure_but_not_its_exception_text(
    tmp_path: Path, redis_url: str
) -> None:
    # A broker that is not there, with a password in its URL.
    broker = f"amqp://aia:hunter2-secret@127.0.0.1:{free_port()}//"
    stack = private_stack(tmp_path, redis_url, broker_url=broker, role="admin")
    try:
        with stack.client() as admin:
            response = admin.get("/status")
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["status"] == "degraded"
        # Refused at once, or still retrying when the check's time ran out.
        assert body["checks"]["broker"]["ok"] is False
        assert body["checks"]["broker"]["error"] in ("unreachable", "timed out")
        assert body["checks"]["redis"]["ok"] is True
        for leak in ("hunter2", "Errno", "refused", "Error", "127.0.0.1"):
            assert leak not in response.text
        # The operator still finds the detail, in the server's log.
        assert "status: the broker check failed" in stack.processes[0].output()
    finally:
        stack.stop()
