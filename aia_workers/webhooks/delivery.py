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

import httpx
import orjson
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.models import AuditEvent, WebhookAttempt, WebhookEndpoint, WebhookMessage
from aia_workers.settings import Settings
from aia_workers.webhooks.http import Reply, post
from aia_workers.webhooks.signing import signed_headers
from aia_workers.webhooks.ssrf import BlockedDestination, resolve

__all__ = ["DeliveryConfig", "deliver", "message_body"]

_RETRIED = "scheduled"
_JITTER = 0.2
# A Retry-After longer than this is taken as this: a receiver cannot park a message forever.
_MAX_RETRY_AFTER_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    timeout_seconds: float
    max_body_bytes: int
    schedule: Sequence[float]
    disable_after_seconds: float
    allow: Sequence[str]

    @property
    def lease_seconds(self) -> float:
        """How long a claimed message is left alone before it counts as lost."""
        return self.timeout_seconds * 2 + 5

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        return cls(
            timeout_seconds=settings.webhook_timeout_seconds,
            max_body_bytes=settings.webhook_response_body_bytes,
            schedule=tuple(settings.webhook_retry_schedule),
            disable_after_seconds=settings.webhook_disable_after_seconds,
            allow=tuple(settings.webhook_allowed_networks),
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


def message_body(message: WebhookMessage) -> bytes:
    """The JSON sent for ``message``: the same bytes on every attempt."""
    envelope = {
        "type": message.event_type,
        "timestamp": message.created_at.isoformat(),
        "data": message.payload,
    }
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
    """Make the next attempt at ``message_id`` if it is still owed; what happened."""
    claim = _claim(sessions, config, tenant, message_id)
    if isinstance(claim, str):
        return {"message_id": message_id, "skipped": claim}
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
        reply = post(
            client,
            destination,
            claim.body,
            headers,
            timeout_seconds=config.timeout_seconds,
            max_body_bytes=config.max_body_bytes,
        )
    return _record(sessions, config, claim, reply)


def _claim(
    sessions: sessionmaker[Session], config: DeliveryConfig, tenant: str, message_id: str
) -> _Claim | str:
    now = datetime.now(UTC)
    with sessions.begin() as session:
        message = session.get(WebhookMessage, message_id)
        if message is None or message.tenant_id != tenant:
            return "no such message"
        if message.status not in ("pending", "sending"):
            return f"already {message.status}"
        endpoint = session.get(WebhookEndpoint, message.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            message.status, message.failed_at, message.lease_until = "failed", now, None
            return "endpoint disabled"
        # Only one attempt at a time: the update matches only while nobody
        # else has counted an attempt since this one read the row.
        taken = session.execute(
            update(WebhookMessage)
            .where(
                WebhookMessage.id == message_id,
                WebhookMessage.status.in_(("pending", "sending")),
                WebhookMessage.attempts == message.attempts,
            )
            .values(status="sending", lease_until=now + timedelta(seconds=config.lease_seconds))
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return "taken by another attempt"
        secrets = [endpoint.secret]
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and expires is not None and expires > now:
            secrets.append(endpoint.previous_secret)
        return _Claim(
            message_id=message.id,
            endpoint_id=endpoint.id,
            tenant=tenant,
            url=endpoint.url,
            secrets=secrets,
            body=message_body(message),
            attempt=message.attempts + 1,
            trigger=message.trigger,
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
    with sessions.begin() as session:
        message = session.get(WebhookMessage, claim.message_id)
        endpoint = session.get(WebhookEndpoint, claim.endpoint_id)
        if message is None or endpoint is None:
            return {"message_id": claim.message_id, "skipped": "deleted while sending"}
        message.attempts = claim.attempt
        message.lease_until = None
        if ok:
            message.status, message.delivered_at = "delivered", now
            endpoint.last_success_at, endpoint.failing_since = now, None
        else:
            endpoint.failing_since = endpoint.failing_since or now
            delay = (
                None
                if gone or claim.trigger != _RETRIED
                else _next_delay(config, claim.attempt, reply.retry_after_seconds)
            )
            if delay is None:
                message.status, message.failed_at = "failed", now
            else:
                next_at = now + timedelta(seconds=delay)
                message.status, message.next_attempt_at = "pending", next_at
            failing_for = (now - endpoint.failing_since).total_seconds()
            if gone:
                _disable(session, endpoint, now, "the endpoint answered 410 Gone")
            elif failing_for >= config.disable_after_seconds and endpoint.enabled:
                _disable(
                    session,
                    endpoint,
                    now,
                    f"no successful delivery for {failing_for / 86_400:.1f} days",
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
        status = message.status
    return {
        "message_id": claim.message_id,
        "attempt": claim.attempt,
        "status_code": reply.status,
        "status": status,
        "next_attempt_at": next_at.isoformat() if next_at else None,
    }


def _disable(session: Session, endpoint: WebhookEndpoint, now: datetime, reason: str) -> None:
    endpoint.enabled, endpoint.disabled_reason, endpoint.updated_at = False, reason, now
    # The notice a person looks for when deliveries stop: in the audit log.
    session.add(
        AuditEvent(
            id=str(uuid.uuid4()),
            tenant_id=endpoint.tenant_id,
            actor="system:webhooks",
            action="endpoint.disabled",
            outcome="success",
            detail={"endpoint_id": endpoint.id, "url": endpoint.url, "reason": reason},
            created_at=now,
        )
    )
