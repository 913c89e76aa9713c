"""The settings the webhook e2e tests start their stacks with: quick relays and retries."""

from __future__ import annotations

__all__ = ["QUICK_WEBHOOKS"]

QUICK_WEBHOOKS = {
    "AIA_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.1"]',
    "AIA_WEBHOOK_RELAY_INTERVAL_SECONDS": "0.2",
    "AIA_WEBHOOK_RETRY_SCHEDULE": "[0.3]",
    # Long enough that no single wait of these tests times out.
    "AIA_WEBHOOK_TIMEOUT_SECONDS": "60",
}
