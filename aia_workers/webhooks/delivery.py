"""One delivery attempt of one message: claim it, sign it, send it, record what happened.

Free of Celery: the ``webhooks.deliver`` task calls ``deliver``. The database
is the source of truth for each message's state, so a duplicate task, a
retried one or one re-sent after its worker died all find out there whether
there is anything left to do, and every attempt carries the message's id.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, StatusCode
from sqlalchemy import and_, func, or_, update
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.identity import AuditEvent
from aia_workers.db.webhooks import WebhookAttempt, WebhookEndpoint, WebhookMessage
from aia_workers.secretbox import SecretBox
from aia_workers.settings import Settings
from aia_workers.tracing.context import TRACEPARENT, context_of, current_traceparent
from aia_workers.tracing.runtime import get_tracer
from aia_workers.webhooks.deadline import Deadline
from aia_workers.webhooks.http import Reply, post
from aia_workers.webhooks.signing import signed_headers
from aia_workers.webhooks.ssrf import BlockedDestination, resolve
from aia_workers.webhooks.store import signing_secrets

__all__ = ["DeliveryConfig", "deliver", "message_body"]

_RETRIED = "scheduled"
_JITTER = 0.2
# A task may run a moment before its message's time (clocks, rounding).
_EARLY = timedelta(milliseconds=250)
_SUCCESS_RESOLUTION = timedelta(seconds=1)
# A Retry-After longer than this is taken as this: a receiver cannot park a message forever.
_MAX_RETRY_AFTER_SECONDS = 86_400.0
# The database writes around an attempt, on top of its deadline.
_BOOKKEEPING_SECONDS = 10.0


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


@dataclass(frozen=True, slots=True)
class _Claim:
    message_id: str
    endpoint_id: str
    tenant: str
    url: str
    secrets: list[str]
    body: bytes
    attempt: int
    trigger: str
    event_type: str
    traceparent: str | None = None


def message_body(event_type: str, created_at: datetime, payload: Any) -> bytes:
    """The JSON sent for a message: the same bytes on every attempt."""
    envelope = {"type": event_type, "timestamp": created_at.isoformat(), "data": payload}
    return orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS)


def deliver(
    sessions: sessionmaker[Session],
    client: httpx.Client,
    config: DeliveryConfig,
    tenant: str,
    message_id: str,
    *,
    resolver: Callable[[str, int], list[str]] | None = None,
) -> dict[str, Any]:
    """Make the next attempt at ``message_id`` if it is still owed; what happened.

    While tracing is on, the attempt is a client span in the trace of what
    caused the message (the task's run), and the request carries its
    ``traceparent`` for a receiver that traces too.
    """
    claim = _claim(sessions, config, tenant, message_id)
    if isinstance(claim, str):
        return {"message_id": message_id, "skipped": claim}
    tracer = get_tracer()
    if tracer is None:
        return _attempt(sessions, client, config, claim, resolver)
    # A child of the delivery task's run, which continues the trace of the
    # message's cause; when it does not (a task sent without it), the cause is
    # the parent and the run a link.
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
        outcome = _attempt(sessions, client, config, claim, resolver)
        code = outcome.get("status_code")
        if code is not None:
            span.set_attribute("http.response.status_code", code)
        span.set_attribute("aia.webhook.status", outcome["status"])
        if outcome["status"] != "delivered":
            span.set_status(StatusCode.ERROR, f"not delivered ({code or 'no reply'})")
        return outcome


def _attempt(
    sessions: sessionmaker[Session],
    client: httpx.Client,
    config: DeliveryConfig,
    claim: _Claim,
    resolver: Callable[[str, int], list[str]] | None,
) -> dict[str, Any]:
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
    return _record(sessions, config, claim, reply)


def _claim(
    sessions: sessionmaker[Session], config: DeliveryConfig, tenant: str, message_id: str
) -> _Claim | str:
    now = datetime.now(UTC)
    m = WebhookMessage
    with sessions.begin() as session:
        # One statement both checks and takes the message: it must be due and
        # not held by a live attempt, so a duplicate or early task finds nothing.
        row = session.execute(
            update(m)
            .where(
                m.id == message_id,
                m.tenant_id == tenant,
                or_(
                    and_(m.status == "pending", m.next_attempt_at <= now + _EARLY),
                    and_(m.status == "sending", m.lease_until < now),
                ),
            )
            .values(status="sending", lease_until=now + timedelta(seconds=config.lease_seconds))
            .returning(
                m.endpoint_id,
                m.event_type,
                m.payload,
                m.created_at,
                m.attempts,
                m.trigger,
                m.traceparent,
            )
        ).one_or_none()
        if row is None:
            return "not owed now (delivered, failed, not due, or being sent)"
        endpoint = session.get(WebhookEndpoint, row.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            session.execute(
                update(m)
                .where(m.id == message_id)
                .values(status="failed", failed_at=now, lease_until=None)
            )
            return "endpoint disabled"
        secrets = signing_secrets(endpoint, config.box, now)
        return _Claim(
            message_id=message_id,
            endpoint_id=endpoint.id,
            tenant=tenant,
            url=endpoint.url,
            secrets=secrets,
            body=message_body(row.event_type, row.created_at, row.payload),
            attempt=row.attempts + 1,
            trigger=row.trigger,
            event_type=row.event_type,
            traceparent=row.traceparent,
        )


def _next_delay(config: DeliveryConfig, attempt: int, retry_after: float | None) -> float | None:
    """Seconds until the next try after failed attempt number ``attempt``, or None: give up."""
    if attempt > len(config.schedule):
        return None
    delay = config.schedule[attempt - 1] * random.uniform(1 - _JITTER, 1 + _JITTER)
    if retry_after is not None:
        # The receiver said when it can take more: not before then.
        delay = max(delay, min(retry_after, _MAX_RETRY_AFTER_SECONDS))
    return delay


def _record(
    sessions: sessionmaker[Session], config: DeliveryConfig, claim: _Claim, reply: Reply
) -> dict[str, Any]:
    now = datetime.now(UTC)
    ok = reply.status is not None and 200 <= reply.status < 300
    gone = reply.status == 410
    next_at: datetime | None = None
    m, e = WebhookMessage, WebhookEndpoint
    with sessions.begin() as session:
        if ok:
            status = "delivered"
            outcome: dict[str, Any] = {"delivered_at": now}
            # Every delivery to an endpoint would otherwise queue on its row's
            # lock; a healthy endpoint's row is touched at most once a second.
            session.execute(
                update(e)
                .where(
                    e.id == claim.endpoint_id,
                    or_(
                        e.failing_since.is_not(None),
                        e.last_success_at.is_(None),
                        e.last_success_at < now - _SUCCESS_RESOLUTION,
                    ),
                )
                .values(last_success_at=now, failing_since=None)
            )
        else:
            failing = session.execute(
                update(e)
                .where(e.id == claim.endpoint_id)
                .values(failing_since=func.coalesce(e.failing_since, now))
                .returning(e.failing_since, e.enabled)
            ).one_or_none()
            delay = (
                None
                if gone or claim.trigger != _RETRIED
                else _next_delay(config, claim.attempt, reply.retry_after_seconds)
            )
            if delay is None:
                status, outcome = "failed", {"failed_at": now}
            else:
                next_at = now + timedelta(seconds=delay)
                status, outcome = "pending", {"next_attempt_at": next_at}
            if failing is not None and failing.enabled:
                failing_for = (now - failing.failing_since).total_seconds()
                if gone:
                    _disable(session, claim, now, "the endpoint answered 410 Gone")
                elif failing_for >= config.disable_after_seconds:
                    days = failing_for / 86_400
                    _disable(session, claim, now, f"no successful delivery for {days:.1f} days")
        session.execute(
            update(m)
            .where(m.id == claim.message_id)
            .values(status=status, attempts=claim.attempt, lease_until=None, **outcome)
        )
        session.add(
            WebhookAttempt(
                id=str(uuid.uuid4()),
                tenant_id=claim.tenant,
                endpoint_id=claim.endpoint_id,
                message_id=claim.message_id,
                attempt=claim.attempt,
                trigger=claim.trigger,
                url=claim.url,
                status_code=reply.status,
                duration_ms=reply.duration_ms,
                response_body=reply.body or None,
                error=reply.error[:2000] if reply.error else None,
                succeeded=ok,
                next_attempt_at=next_at,
                created_at=now,
            )
        )
    return {
        "message_id": claim.message_id,
        "attempt": claim.attempt,
        "status_code": reply.status,
        "status": status,
        "next_attempt_at": next_at.isoformat() if next_at else None,
    }


def _disable(session: Session, claim: _Claim, now: datetime, reason: str) -> None:
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == claim.endpoint_id)
        .values(enabled=False, disabled_reason=reason, updated_at=now)
    )
    # The notice a person looks for when deliveries stop: in the audit log.
    session.add(
        AuditEvent(
            id=str(uuid.uuid4()),
            tenant_id=claim.tenant,
            actor="system:webhooks",
            action="endpoint.disabled",
            outcome="success",
            detail={"endpoint_id": claim.endpoint_id, "url": claim.url, "reason": reason},
            created_at=now,
        )
    )
