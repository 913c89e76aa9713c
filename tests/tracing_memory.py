"""Spans kept in memory, for tests of what one process traces."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from aia_workers.tracing import runtime

__all__ = ["Spans", "installed_spans"]


class Spans:
    """The finished spans of ``tracer``, by name."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer: Tracer = self.provider.get_tracer("tests")

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        found = [s for s in self.finished() if s.name == name]
        assert len(found) == 1, [s.name for s in self.finished()]
        return found[0]


@contextlib.contextmanager
def installed_spans() -> Iterator[Spans]:
    """An in-memory tracer, installed as this process's inside the block."""
    kept = Spans()
    before = dict(runtime._state)
    runtime.install(kept.provider)
    try:
        yield kept
    finally:
        runtime._state.clear()
        runtime._state.update(before)
        kept.provider.shutdown()
