"""Liveness, a status report of every dependency, and Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aia_api.http.client import client_address
from aia_api.http.openapi import Reply, Tag, operation
from aia_api.http.problems import PROBLEM_JSON, Problem
from aia_api.http.responses import ProblemDetails
from aia_api.http.tenancy import require
from aia_api.identity.authenticator import TooManyFailures, Unauthenticated
from aia_api.identity.refusals import too_many_failures, unauthenticated
from aia_api.identity.roles import Permission
from aia_api.ops.responses import Health, StatusReport
from aia_api.services import Services, services
from aia_workers.backbone.backlog import (
    amqp_depths,
    ask_depths,
    ask_oldest,
    ask_records,
    read_depths,
    read_oldest,
)
from aia_workers.backbone.keys import DRIFT_LATEST_KEY, WORKERS_KEY
from aia_workers.backbone.registry import online_by_queue
from aia_workers.backbone.states import Queue
from aia_workers.db.session import DATABASE_DOWN
from aia_workers.drift.latest import read_latest
from aia_workers.webhooks.store import outbox_counts

__all__ = ["routes"]

log = logging.getLogger(__name__)

_CHECK_TIMEOUT = 3.0
_UNREACHABLE: tuple[type[Exception], ...] = (
    OSError,
    redis.exceptions.ConnectionError,
    kombu.exceptions.OperationalError,
    *DATABASE_DOWN,
)


_OPS = Tag("ops", "Health, status and metrics.")


@operation(
    id="health",
    summary="Liveness",
    tag=_OPS,
    responses={200: Reply("The API process answers.", Health)},
    description="Public. Says nothing about the dependencies: see /status.",
    public=True,
)
async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _reason(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, _UNREACHABLE):
        return "unreachable"
    return "check failed"


async def _check(name: str, probe: Callable[[], Awaitable[Any]]) -> tuple[str, dict[str, Any]]:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(probe(), _CHECK_TIMEOUT)
    except Exception as exc:
        # An exception's text can carry host names, ports, user names or a
        # URL: it goes to the server's log, and every viewer (admins too, who
        # can read that log) gets only what kind of failure it was.
        log.warning("status: the %s check failed", name, exc_info=exc)
        return name, {"ok": False, "error": _reason(exc)}
    report = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    if isinstance(detail, dict):
        report.update(detail)
    return name, report


@operation(
    id="status",
    summary="Dependency status",
    tag=_OPS,
    permission=Permission.STATUS_READ,
    responses={
        200: Reply("Every dependency is reachable.", StatusReport),
        503: Reply(
            "A dependency is down (a StatusReport with `degraded`), or the "
            "caller could not be checked (a problem).",
            content={
                "application/json": {"schema": StatusReport},
                PROBLEM_JSON: {"schema": ProblemDetails},
            },
        ),
    },
    errors=("401", "403", "429"),
    description="The database, Redis, the broker's queue depths, workers online.",
)
async def status(request: Request) -> Response:
    require(request, Permission.STATUS_READ)
    svc = services(request)

    async def database() -> None:
        def ping() -> None:
            with svc.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        await anyio.to_thread.run_sync(ping)

    async def redis() -> None:
        await svc.redis.ping()

    checks = await asyncio.gather(
        _check("database", database),
        _check("redis", redis),
        _check("broker", lambda: _broker(svc)),
        _check("workers", lambda: _workers(svc)),
    )
    report = dict(checks)
    healthy = all(c["ok"] for c in report.values())
    body = {"status": "ok" if healthy else "degraded", "checks": report}
    return JSONResponse(body, status_code=200 if healthy else 503)


async def _broker(svc: Services) -> dict[str, Any]:
    queues = [q.value for q in Queue]
    if svc.settings.broker_is_redis and svc.settings.broker_url == svc.settings.redis_url:
        now = time.time()
        pipe = svc.redis.pipeline(transaction=False)
        ask_depths(pipe, queues)
        ask_oldest(pipe, queues, now)
        replies = await pipe.execute()
        depth_replies = len(replies) - len(queues)
        candidates = replies[depth_replies:]
        pipe = svc.redis.pipeline(transaction=False)
        ask_records(pipe, candidates)
        return {
            "transport": "redis",
            "queue_depths": read_depths(replies[:depth_replies], queues),
            "oldest_waits": read_oldest(queues, candidates, await pipe.execute(), now),
        }
    return await anyio.to_thread.run_sync(_broker_depths_blocking, svc)


def _broker_depths_blocking(svc: Services) -> dict[str, Any]:
    with svc.celery.connection_for_write() as conn:
        names = [queue.name for queue in svc.celery.amqp.queues.values()]
        depths = amqp_depths(conn, names, timeout=_CHECK_TIMEOUT)
        return {"transport": conn.transport_cls, "queue_depths": depths}


async def _workers(svc: Services) -> dict[str, Any]:
    entries: dict[str, str] = await svc.redis.hgetall(WORKERS_KEY)  # type: ignore[assignment]
    online = online_by_queue(entries, time.time(), (q.value for q in Queue))
    return {"online": online, "count": {q: len(h) for q, h in online.items()}}


@operation(
    id="metrics",
    summary="Prometheus metrics",
    tag=_OPS,
    permission=Permission.STATUS_READ,
    responses={
        200: Reply(
            "The Prometheus text exposition format.",
            content={"text/plain": {"schema": {"type": "string"}}},
        )
    },
    errors=("401", "403", "503"),
    description=(
        "Needs `status:read`, or `Authorization: Bearer <AIA_METRICS_TOKEN>` "
        "when the scrape token is set. Per model, from its latest drift report: "
        "`aia_model_drift_share{tenant,model}` and `aia_model_drifted{tenant,model}`."
    ),
)
async def metrics(request: Request) -> Response:
    svc = services(request)
    # Prometheus scrapes with the scrape token when one is set; anyone else
    # needs credentials like on every other route.
    authorization = request.headers.get("authorization", "")
    token = svc.settings.metrics_token
    if not (token and hmac.compare_digest(authorization, f"Bearer {token}")):
        try:
            principal = await svc.auth.authenticate(
                authorization or None,
                request.headers.get("x-api-key"),
                # Public for the scrape token only: guesses are budgeted as anywhere.
                address=client_address(request) or "unknown",
            )
        except TooManyFailures as exc:
            raise too_many_failures(exc) from None
        except Unauthenticated as exc:
            raise unauthenticated(str(exc)) from None
        if not principal.can(Permission.STATUS_READ):
            raise Problem(403, "forbidden", "Forbidden", "this needs the status:read permission")
    await _refresh_webhook_gauges(svc)
    await _refresh_drift_gauges(svc)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _refresh_webhook_gauges(svc: Services) -> None:
    def count() -> tuple[dict[str, int], int]:
        with svc.sessions() as session:
            return outbox_counts(session)

    try:
        by_status, disabled = await anyio.to_thread.run_sync(count)
    except sqlalchemy.exc.SQLAlchemyError:
        # The scrape still answers; /status reports the database as down.
        log.warning("metrics: could not count webhook messages", exc_info=True)
        return
    for status, value in by_status.items():
        svc.metrics.webhook_messages.labels(status).set(value)
    svc.metrics.webhook_endpoints_disabled.set(disabled)


async def _refresh_drift_gauges(svc: Services) -> None:
    try:
        entries = await svc.redis.hgetall(DRIFT_LATEST_KEY)
    except redis.exceptions.RedisError:
        log.warning("metrics: could not read the latest drift verdicts", exc_info=True)
        return
    # Cleared first: a model whose verdict is gone (its hash field deleted) leaves no gauge.
    svc.metrics.model_drift_share.clear()
    svc.metrics.model_drifted.clear()
    for verdict in read_latest(entries):
        labels = (verdict.tenant, verdict.model)
        svc.metrics.model_drift_share.labels(*labels).set(verdict.drifted_share)
        svc.metrics.model_drifted.labels(*labels).set(1 if verdict.drifted else 0)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/status", status, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
