"""Where domain code announces a tenant's events: the webhook outbox, in the caller's transaction.

A domain takes a sink (``aia_workers.ml.registry.ModelEvents``) rather than
importing the webhooks package, so it does not depend on who listens; the
adapters that build it (the ``ml`` tasks, the API's routes) pass ``to_webhooks``,
as the recorder writes ``task.*`` events to the same outbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from aia_workers.webhooks.outbox import publish

__all__ = ["to_webhooks"]


def to_webhooks(
    session: Session,
    tenant: str,
    event_type: str,
    payload: Mapping[str, Any],
    /,
    *,
    dedupe_key: str,
) -> None:
    """Record the event for each of ``tenant``'s endpoints subscribed to it; nothing is sent yet."""
    publish(session, tenant, event_type, payload, dedupe_key=dedupe_key)
