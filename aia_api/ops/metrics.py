"""Prometheus metrics of the API, kept in a registry per app."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ApiMetrics", "MetricsMiddleware"]


class ApiMetrics:
    """The API's instruments; one set per app so tests can build many apps."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "aia_http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "aia_http_request_duration_seconds",
            "Time to the start of the response, by method and route template.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.submitted = Counter(
            "aia_tasks_submitted_total",
            "Tasks accepted for running, by type and queue.",
            ["type", "queue"],
            registry=self.registry,
        )
        self.streams = Gauge(
            "aia_event_subscribers",
            "Open SSE and WebSocket subscriptions in this process.",
            registry=self.registry,
        )
        # Read from the database at each scrape: the same in every API process.
        self.webhook_messages = Gauge(
            "aia_webhook_messages",
            "Webhook messages by status, all tenants (failed: dead letters kept for resending).",
            ["status"],
            registry=self.registry,
        )
        # From each model's latest drift report, kept in one Redis hash by the drift
        # checks (aia_workers.drift.latest): a scrape costs one HGETALL.
        self.model_drift_share = Gauge(
            "aia_model_drift_share",
            "The share of a model's features that drifted in its latest drift report.",
            ["tenant", "model"],
            registry=self.registry,
        )
        self.model_drifted = Gauge(
            "aia_model_drifted",
            "1 when a model's latest drift report found its data drifted, else 0.",
            ["tenant", "model"],
            registry=self.registry,
        )
        self.webhook_endpoints_disabled = Gauge(
            "aia_webhook_endpoints_disabled",
            "Webhook endpoints disabled by a 410, a long run of failures, or a person.",
            registry=self.registry,
        )


class MetricsMiddleware:
    """Counts requests and times them to the start of the response (streams stay open)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.latency.labels(scope["method"], _route(scope)).observe(
                    time.perf_counter() - started
                )
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.metrics.requests.labels(scope["method"], _route(scope), str(status)).inc()


def _route(scope: Scope) -> str:
    # Templates, not raw paths, so task ids do not explode the label set. The
    # router records the matched route in the scope that this middleware shares.
    route = scope.get("route")
    return getattr(route, "path", "<unmatched>") if route is not None else "<unmatched>"
