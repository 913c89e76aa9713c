"""The API's server spans: one per request, its traceparent on every response."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aia_api.http.security_headers import SecureStarlette
from aia_api.http.tracing import TracingMiddleware
from aia_workers.tracing.context import current_traceparent
from tests.tracing_memory import Spans

_CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def _item(request: Request) -> Response:
    # Work inside the request sees its span as current.
    return JSONResponse({"seen": current_traceparent()}, status_code=201)


async def _boom(request: Request) -> Response:
    raise RuntimeError("boom")


@pytest.fixture
def kept() -> Spans:
    return Spans()


class _Client:
    """Requests straight into the app, without a server."""

    def __init__(self, kept: Spans) -> None:
        self.app = SecureStarlette(
            routes=[
                Route("/v1/items/{item_id}", _item, methods=["POST"]),
                Route("/boom", _boom),
            ],
            outermost=[lambda inner: TracingMiddleware(inner, kept.tracer)],
        )

    def request(
        self, method: str, path: str, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                return await client.request(method, path, headers=headers)

        return asyncio.run(call())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return self.request("POST", path, headers)


@pytest.fixture
def client(kept: Spans) -> _Client:
    return _Client(kept)


def test_a_request_is_a_server_span_named_for_its_route(client: _Client, kept: Spans) -> None:
    response = client.post("/v1/items/42")
    assert response.status_code == 201
    span = kept.named("POST /v1/items/{item_id}")
    assert span.kind.name == "SERVER"
    assert span.parent is None
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/v1/items/{item_id}"
    assert span.attributes["http.request.method"] == "POST"
    assert span.attributes["url.path"] == "/v1/items/42"
    assert span.attributes["http.response.status_code"] == 201
    ctx = span.context
    header = response.headers["traceparent"]
    assert header == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    assert response.json() == {"seen": header}
    # The security headers are still there: tracing wraps them, it does not replace them.
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_caller_s_traceparent_makes_the_request_its_child(client: _Client, kept: Spans) -> None:
    response = client.post("/v1/items/1", headers={"traceparent": _CALLER})
    span = kept.named("POST /v1/items/{item_id}")
    assert span.parent is not None
    assert span.parent.span_id == 0x00F067AA0BA902B7
    assert response.headers["traceparent"].split("-")[1] == _CALLER.split("-")[1]


def test_a_garbled_traceparent_starts_a_new_trace(client: _Client, kept: Spans) -> None:
    response = client.post("/v1/items/1", headers={"traceparent": "00-zz-yy-01"})
    assert response.status_code == 201
    assert kept.named("POST /v1/items/{item_id}").parent is None


def test_errors_and_unknown_paths_are_spans_with_the_header_too(
    client: _Client, kept: Spans
) -> None:
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.headers["traceparent"]
    failed = client.get("/boom")
    assert failed.status_code == 500
    assert failed.headers["traceparent"]
    unmatched = kept.named("GET")
    assert unmatched.attributes is not None
    assert unmatched.attributes["http.response.status_code"] == 404
    assert unmatched.status.is_unset
    boom = kept.named("GET /boom")
    assert boom.attributes is not None
    assert boom.attributes["http.response.status_code"] == 500
    assert boom.status.status_code.name == "ERROR"
    assert [e.name for e in boom.events] == ["exception"]
