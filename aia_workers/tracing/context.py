"""The W3C ``traceparent`` of a span, and the context a received one stands for.

Formatted by hand: the propagator's carrier machinery is several times
slower, and a traceparent is all AIA carries (no tracestate or baggage).
"""

from __future__ import annotations

import re

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags

__all__ = ["TRACEPARENT", "context_of", "current_traceparent", "traceparent"]

# The HTTP header, Celery message header and webhook request header.
TRACEPARENT = "traceparent"
_VERSION = "00"
_LENGTH = 55
_FORMAT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})"
)


def traceparent(span: Span) -> str | None:
    """``span``'s traceparent, None for a span that stands for no trace (tracing off)."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return f"{_VERSION}-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def current_traceparent() -> str | None:
    """The traceparent of the span current in this context, if any."""
    return traceparent(trace.get_current_span())


def context_of(value: str | bytes | None) -> Context | None:
    """The context whose parent is the span ``value`` names; None when it names none.

    Malformed values are ignored rather than refused: they come from callers
    and messages, and a bad one must cost only the link to its trace.
    """
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not value or len(value) != _LENGTH:
        return None
    match = _FORMAT.match(value)
    if match is None or match["version"] == "ff":
        return None
    trace_id, span_id = int(match["trace"], 16), int(match["span"], 16)
    if not trace_id or not span_id:
        return None
    parent = SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(match["flags"], 16))
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))
