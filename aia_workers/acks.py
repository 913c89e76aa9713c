"""A Celery request that does not acknowledge on a channel the broker connection took down.

When the broker goes away, Celery closes the consumer's connection at once and
reconnects on a new one. A task that finishes after that still holds the old
message, and acknowledging or rejecting it there makes kombu's Redis channel
build a client from a connection that no longer has one (``'NoneType' object
has no attribute 'hostname'``, kombu#582), an error Celery does not expect,
which stops the worker for good. The message is still the broker's (unacked on
Redis, redelivered by RabbitMQ when the channel closed), so it comes back on
its own; the task's record decides then whether it runs again (see
``AiaTask.__call__``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.request import Request

__all__ = ["AiaRequest", "channel_lost"]

log = logging.getLogger(__name__)


def channel_lost(message: Any) -> bool:
    """True when ``message`` came through a channel that has since been closed."""
    channel = getattr(message, "channel", None)
    if channel is None or getattr(channel, "closed", False):  # kombu's virtual transports
        return True
    if getattr(channel, "is_open", True) is False:  # py-amqp
        return True
    transport = getattr(channel, "connection", None)
    # A virtual transport is detached from its kombu Connection when that closes.
    return transport is None or (hasattr(transport, "client") and transport.client is None)


class AiaRequest(Request):  # type: ignore[misc]
    """Leaves a message whose channel is gone to the broker instead of crashing on it."""

    def acknowledge(self) -> None:
        if not self.acknowledged and channel_lost(self._message):
            self._leave_to_broker("acknowledged")
            return
        super().acknowledge()

    def reject(self, requeue: bool = False) -> None:
        if not self.acknowledged and channel_lost(self._message):
            self._leave_to_broker("rejected")
            return
        super().reject(requeue=requeue)

    def _leave_to_broker(self, verb: str) -> None:
        self.acknowledged = True
        log.warning(
            "task %s[%s] cannot be %s: its broker connection was lost; "
            "the broker will deliver it again",
            self.name,
            self.id,
            verb,
        )
