"""Delivery attempts: claim a batch of messages, sign and send each, record what happened.

Free of Celery: the ``webhooks.deliver_batch`` and ``webhooks.deliver`` tasks
call ``deliver_batch``. The batch is claimed in one transaction; its requests
go out at once, one thread each (each attempt held to its own deadline), so a
slow or failing receiver holds up no other message; attempts are recorded in
groups as their replies come in, each group in a handful of statements.
Every attempt carries its message's id, so a duplicate is recognisable.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextvars
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, StatusCode
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.secretbox import SecretBox
from aia_workers.settings import Settings
from aia_workers.tracing.context import TRACEPARENT, context_of, current_traceparent
from aia_workers.tracing.runtime import get_tracer
from aia_workers.webhooks.claims import Claim, claim_due, claim_next, message_body
from aia_workers.webhooks.deadline import Deadline
from aia_workers.webhooks.http import Reply, post
from aia_workers.webhooks.records import Attempted, decide, record
from aia_workers.webhooks.signing import signed_headers
from aia_workers.webhooks.ssrf import BlockedDestination, resolve

__all__ = ["Continuation", "DeliveryConfig", "deliver", "deliver_batch", "message_body"]

log = logging.getLogger(__name__)

# The database writes around an attempt, on top of its deadline.
_BOOKKEEPING_SECONDS = 10.0
# Replies that come in this close together are recorded in one transaction.
_GROUP_SECONDS = 0.005

Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    timeout_seconds: float
    deadline_seconds: float
    max_body_bytes: int
    schedule: Sequence[float]
    disable_after_seconds: float
    allow: Sequence[str]
    # Decrypts the endpoints' signing secrets.
    box: SecretBox

    @property
    def lease_seconds(self) -> float:
        """How long a claimed message is left alone before it counts as lost."""
        return self.deadline_seconds + _BOOKKEEPING_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        return cls(
            timeout_seconds=settings.webhook_timeout_seconds,
            deadline_seconds=settings.webhook_deadline_seconds,
            max_body_bytes=settings.webhook_response_body_bytes,
            schedule=tuple(settings.webhook_retry_schedule),
            disable_after_seconds=settings.webhook_disable_after_seconds,
            allow=tuple(settings.webhook_allowed_networks),
            box=SecretBox.from_settings(settings),
        )


def deliver(
    sessions: sessionmaker[Session],
    client: httpx.Client,
    config: DeliveryConfig,
    tenant: str,
    message_id: str,
    *,
    resolver: Resolver | None = None,
) -> dict[str, Any]:
    """Make the next attempt at ``message_id`` if it is still owed; what happened."""
    [outcome] = deliver_batch(sessions, client, config, [(message_id, tenant)], resolver=resolver)
    return outcome


@dataclass(frozen=True, slots=True)
class Continuation:
    """How a batch goes on with its tenants' next due messages as it records replies.

    A busy tenant's freed room is filled in the transaction that frees it,
    rather than after a relay pass and a broker hop (bench/webhook_delivery.py).
    """

    tenant_max_inflight: int
    # A batch leases more only this long after it started, so a long burst
    # still passes through the relay and the broker, where other workers and
    # a shutdown see it.
    seconds: float
    # The most attempts one batch has in flight at once.
    most: int


def deliver_batch(
    sessions: sessionmaker[Session],
    client: httpx.Client,
    config: DeliveryConfig,
    messages: Sequence[tuple[str, str]],
    *,
    resolver: Resolver | None = None,
    on_recorded: Callable[[], None] | None = None,
    more: Continuation | None = None,
) -> list[dict[str, Any]]:
    """Make the next attempt at each of ``messages`` ((id, tenant) pairs) still owed.

    Returns what happened to each, in the order given, then to each message
    leased along the way. ``on_recorded`` is called after a group of attempts
    is written that left room the batch did not fill itself (those messages
    are no longer in flight). With ``more``, each group's transaction also
    leases and claims its tenants' next due untraced messages, within their
    in-flight cap, and the batch sends them too. While tracing is on, each
    attempt is a client span in the trace of what caused its message, and its
    request carries that span's ``traceparent`` for a receiver that traces too.
    """
    started = time.monotonic()
    now = datetime.now(UTC)
    with sessions.begin() as session:
        claimed = claim_due(
            session, messages, now=now, lease_seconds=config.lease_seconds, box=config.box
        )
    order = [ident for ident, _ in messages]
    outcomes = {
        ident: {"message_id": ident, "skipped": why} for ident, why in claimed.skipped.items()
    }

    def write(done: Sequence[Attempted], in_flight: int) -> list[Claim]:
        if not done:
            return []
        fresh: list[Claim] = []
        with sessions.begin() as session:
            record(session, done, disable_after_seconds=config.disable_after_seconds)
            room = 0 if more is None else more.most - in_flight
            if room > 0 and more is not None and time.monotonic() - started < more.seconds:
                fresh = _lease_more(session, config, more, {a.claim.tenant for a in done}, room)
        for attempted in done:
            outcomes[attempted.claim.message_id] = attempted.outcome()
        order.extend(c.message_id for c in fresh)
        if on_recorded is not None and len(fresh) < len(done):
            on_recorded()
        return fresh

    claims = claimed.claims
    if len(claims) == 1 and more is None:
        write([_attempt(client, config, claims[0], resolver)], 0)
    elif claims:
        threads = max(len(claims), more.most if more is not None else 0)
        _attempt_all(client, config, claims, resolver, write, threads)
    return [outcomes[ident] for ident in order if ident in outcomes]


def _lease_more(
    session: Session, config: DeliveryConfig, more: Continuation, tenants: set[str], room: int
) -> list[Claim]:
    # Untraced only: a traced message's task continues its trace, so the relay sends it one.
    return claim_next(
        session,
        tenants,
        now=datetime.now(UTC),
        lease_seconds=config.lease_seconds,
        tenant_max_inflight=more.tenant_max_inflight,
        limit=room,
        box=config.box,
    )


def _attempt_all(
    client: httpx.Client,
    config: DeliveryConfig,
    claims: Sequence[Claim],
    resolver: Resolver | None,
    write: Callable[[Sequence[Attempted], int], Sequence[Claim]],
    threads: int,
) -> None:
    # A thread per attempt in flight: an attempt that waited for a thread
    # would spend its lease waiting, and another relay would hand the message
    # out again. Threads are reused by the messages leased along the way.
    with futures.ThreadPoolExecutor(threads, thread_name_prefix="aia-webhook") as pool:

        def start(started: Sequence[Claim]) -> set[futures.Future[Attempted]]:
            # Each attempt in a copy of this context: its span's parent is this task's run.
            return {
                pool.submit(contextvars.copy_context().run, _attempt, client, config, c, resolver)
                for c in started
            }

        pending = start(claims)
        while pending:
            done, pending = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
            if pending:
                also, pending = futures.wait(pending, timeout=_GROUP_SECONDS)
                done |= also
            attempted = []
            for f in done:
                try:
                    attempted.append(f.result())
                except Exception:
                    # Left to its lease: it goes again once that runs out,
                    # and the batch's other messages are recorded as usual.
                    log.exception("webhook attempt failed unexpectedly")
            pending |= start(write(attempted, len(pending)))


def _attempt(
    client: httpx.Client, config: DeliveryConfig, claim: Claim, resolver: Resolver | None
) -> Attempted:
    tracer = get_tracer()
    if tracer is None:
        return _send(client, config, claim, resolver)
    # A child of the delivery task's run, which continues the trace of the
    # message's cause; when it does not (a task sent without it, or a batch),
    # the cause is the parent and the run a link.
    here = trace.get_current_span().get_span_context()
    cause = context_of(claim.traceparent)
    links = None
    if cause is not None:
        caused_in = trace.get_current_span(cause).get_span_context().trace_id
        if here.trace_id == caused_in:
            cause = None
        elif here.is_valid:
            links = [Link(here)]
    with tracer.start_as_current_span(
        f"deliver {claim.event_type}",
        context=cause,
        kind=SpanKind.CLIENT,
        links=links,
        attributes={
            "aia.tenant": claim.tenant,
            "aia.webhook.message_id": claim.message_id,
            "aia.webhook.endpoint_id": claim.endpoint_id,
            "aia.webhook.event": claim.event_type,
            "aia.webhook.attempt": claim.attempt,
            # The host alone: a webhook URL often holds a token in its path or query.
            "server.address": urlsplit(claim.url).hostname or "",
        },
    ) as span:
        attempted = _send(client, config, claim, resolver)
        code = attempted.reply.status
        if code is not None:
            span.set_attribute("http.response.status_code", code)
        span.set_attribute("aia.webhook.status", attempted.status)
        if not attempted.ok:
            span.set_status(StatusCode.ERROR, f"not delivered ({code or 'no reply'})")
        return attempted


def _send(
    client: httpx.Client, config: DeliveryConfig, claim: Claim, resolver: Resolver | None
) -> Attempted:
    # Started before the lookup: the name's resolution is part of the attempt.
    deadline = Deadline(config.deadline_seconds)
    try:
        destination = resolve(claim.url, allow=config.allow, resolver=resolver)
    except (BlockedDestination, ValueError) as exc:
        reply = Reply(
            status=None, duration_ms=0.0, body="", retry_after_seconds=None, error=f"refused: {exc}"
        )
    else:
        headers = signed_headers(
            claim.message_id, int(datetime.now(UTC).timestamp()), claim.body, claim.secrets
        )
        traced = current_traceparent()
        if traced is not None:
            headers = {**headers, TRACEPARENT: traced}
        reply = post(
            client,
            destination,
            claim.body,
            headers,
            timeout_seconds=config.timeout_seconds,
            max_body_bytes=config.max_body_bytes,
            deadline=deadline,
        )
    return decide(config.schedule, claim, reply, datetime.now(UTC))
