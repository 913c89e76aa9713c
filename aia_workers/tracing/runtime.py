"""This process's tracer: made from Settings at start, or None while tracing is off.

Nothing is imported from the OpenTelemetry SDK unless tracing is on, and code
on a hot path asks ``get_tracer()`` once and skips its spans when it is None,
so a process without an endpoint pays nothing for tracing. The tracer
provider is AIA's own rather than OpenTelemetry's global one: a test installs
a provider with an in-memory exporter, and a second ``install`` replaces it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from opentelemetry.trace import Tracer

from aia_workers.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["configure_tracing", "flush", "get_tracer", "install", "otlp_traces_url"]

log = logging.getLogger(__name__)

_INSTRUMENTATION = "aia"
_state: dict[str, object] = {}


def otlp_traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (as OTEL_EXPORTER_OTLP_ENDPOINT)."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


def configure_tracing(settings: Settings, service: str) -> Tracer | None:
    """Export this process's spans as ``service`` when an endpoint is set; its tracer or None."""
    if not settings.otel_exporter_otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    url = otlp_traces_url(settings.otel_exporter_otlp_endpoint)
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(TraceIdRatioBased(settings.otel_sample_ratio)),
    )
    # Batched on a thread of the SDK's own (restarted in a forked child), so a
    # span costs the traced code an append, never a network call.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    log.info("tracing: exporting spans of %s to %s", service, url)
    return install(provider)


def install(provider: TracerProvider) -> Tracer:
    """Make ``provider`` this process's; its tracer."""
    tracer = provider.get_tracer(_INSTRUMENTATION)
    _state.update(provider=provider, tracer=tracer)
    return tracer


def get_tracer() -> Tracer | None:
    """This process's tracer, None while tracing is off."""
    tracer = _state.get("tracer")
    return tracer if isinstance(tracer, Tracer) else None


def flush(timeout_seconds: float = 5.0) -> None:
    """Export the spans still batched (before a process or a prefork child ends)."""
    provider = _state.get("provider")
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(int(timeout_seconds * 1000))
