"""The security headers middleware and the log filter, without a server."""

from __future__ import annotations

import asyncio
import logging

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from aia_api.http.accesslog import RedactQuerySecrets
from aia_api.http.security_headers import API_POLICY, SecureStarlette


async def _boom(_: Request) -> Response:
    raise RuntimeError("a bug")


async def _own_policy(_: Request) -> Response:
    return PlainTextResponse("hi", headers={"Content-Security-Policy": "default-src 'self'"})


def _get(base_url: str, path: str) -> httpx.Response:
    app = SecureStarlette(routes=[Route("/boom", _boom), Route("/own", _own_policy)])

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            return await client.get(path)

    return asyncio.run(call())


def test_even_an_unhandled_error_carries_the_headers() -> None:
    response = _get("http://api", "/boom")
    assert response.status_code == 500
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == API_POLICY
    assert "strict-transport-security" not in response.headers


def test_hsts_over_tls_and_a_route_keeps_its_own_policy() -> None:
    response = _get("https://api", "/own")
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert response.headers["content-security-policy"] == "default-src 'self'"
    assert _get("https://api", "/missing").headers["x-content-type-options"] == "nosniff"


def test_query_secrets_are_masked_in_uvicorn_log_records() -> None:
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/tasks/t1/events?after=3&ticket=abc-DEF_123", "1.1", 200),
        None,
    )
    handshake = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" 403',
        ("127.0.0.1:5000", "/v1/ws?access_token=aia_secret&x=1"),
        None,
    )
    for record in (access, handshake):
        assert RedactQuerySecrets().filter(record)
    assert access.getMessage().endswith('"GET /v1/tasks/t1/events?after=3&ticket=*** HTTP/1.1" 200')
    assert handshake.getMessage() == '127.0.0.1:5000 - "WebSocket /v1/ws?access_token=***&x=1" 403'
