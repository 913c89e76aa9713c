"""JSON views of webhook endpoints, messages and attempts. Secrets are never in them."""

from __future__ import annotations

from typing import Any

from aia_workers.backbone.view import iso_time
from aia_workers.db.webhooks import WebhookAttempt, WebhookEndpoint, WebhookMessage

__all__ = ["attempt_view", "endpoint_view", "message_view"]


def endpoint_view(endpoint: WebhookEndpoint) -> dict[str, Any]:
    base = f"/v1/webhooks/{endpoint.id}"
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.events,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": iso_time(endpoint.failing_since),
        "last_success_at": iso_time(endpoint.last_success_at),
        "previous_secret_expires_at": iso_time(endpoint.previous_secret_expires_at),
        "created_by": endpoint.created_by,
        "created_at": endpoint.created_at.isoformat(),
        "updated_at": endpoint.updated_at.isoformat(),
        "links": {
            "self": base,
            "messages": f"{base}/messages",
            "attempts": f"{base}/attempts",
        },
    }


def message_view(message: WebhookMessage) -> dict[str, Any]:
    base = f"/v1/webhooks/{message.endpoint_id}"
    return {
        "id": message.id,
        "endpoint_id": message.endpoint_id,
        "event_type": message.event_type,
        "payload": message.payload,
        "status": message.status,
        "attempts": message.attempts,
        "trigger": message.trigger,
        "next_attempt_at": iso_time(message.next_attempt_at)
        if message.status == "pending"
        else None,
        "created_at": message.created_at.isoformat(),
        "delivered_at": iso_time(message.delivered_at),
        "failed_at": iso_time(message.failed_at),
        "links": {
            "self": f"{base}/messages?status={message.status}",
            "attempts": f"{base}/attempts?message_id={message.id}",
            "resend": f"{base}/messages/{message.id}/resend",
        },
    }


def attempt_view(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "message_id": attempt.message_id,
        "attempt": attempt.attempt,
        "trigger": attempt.trigger,
        "url": attempt.url,
        "status_code": attempt.status_code,
        "succeeded": attempt.succeeded,
        "duration_ms": attempt.duration_ms,
        "response_body": attempt.response_body,
        "error": attempt.error,
        "next_attempt_at": iso_time(attempt.next_attempt_at),
        "created_at": attempt.created_at.isoformat(),
    }
