"""The W3C traceparent AIA writes and reads."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from aia_workers.tracing.context import context_of, current_traceparent, traceparent
from tests.tracing_memory import Spans

_VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_span_s_traceparent_names_its_trace_and_span() -> None:
    kept = Spans()
    with kept.tracer.start_as_current_span("work") as span:
        ctx = span.get_span_context()
        assert (
            traceparent(span) == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
        )
        assert current_traceparent() == traceparent(span)
    assert current_traceparent() is None  # outside any span (tracing off looks the same)


def test_a_received_traceparent_becomes_the_parent_of_the_next_span() -> None:
    kept = Spans()
    with kept.tracer.start_as_current_span("child", context=context_of(_VALID.encode())):
        pass
    child = kept.named("child")
    assert child.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert child.parent is not None
    assert child.parent.span_id == 0x00F067AA0BA902B7
    assert child.parent.is_remote


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        _VALID.upper(),
        _VALID + "-extra",
        "ff" + _VALID[2:],  # a version that may never be used
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # no trace
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # no span
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ],
)
def test_a_malformed_traceparent_is_ignored(value: str | None) -> None:
    assert context_of(value) is None


def test_no_span_is_current_in_the_context_of_nothing() -> None:
    assert not trace.get_current_span().get_span_context().is_valid
