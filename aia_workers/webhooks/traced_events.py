"""Publishing events as spans: each traced event's outbox rows are written inside a span
of its cause's trace, and carry that span on to their deliveries."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence

from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

from aia_workers.tracing.context import context_of, traceparent
from aia_workers.webhooks.outbox import Event

__all__ = ["announcing"]


@contextlib.contextmanager
def announcing(tracer: Tracer | None, events: Sequence[Event]) -> Iterator[Sequence[Event]]:
    """The events to publish, each traced one naming a span that lasts the ``with`` block.

    Without a tracer (tracing off), or for events whose cause was not traced,
    the events are given back as they are.
    """
    if tracer is None or not any(e.traceparent for e in events):
        yield events
        return
    spans: list[Span] = []
    published: list[Event] = []
    for event in events:
        parent = context_of(event.traceparent)
        if parent is None:
            published.append(event)
            continue
        span = tracer.start_span(
            f"publish {event.type}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={"aia.tenant": event.tenant, "aia.webhook.event": event.type},
        )
        spans.append(span)
        published.append(dataclasses.replace(event, traceparent=traceparent(span)))
    try:
        yield published
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR, type(exc).__name__)
        raise
    finally:
        for span in spans:
            span.end()
