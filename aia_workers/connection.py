"""The broker connection every AIA process uses: it retries often while the broker is away.

Celery's consumer reconnects with kombu's defaults, waiting 2 s, then 4 s, and
up to 30 s between attempts, so after a minute-long outage a worker could sit
idle for half a minute with the broker back. Capping the wait keeps the time
from "broker back" to "consuming again" within a few seconds; an attempt
against a host that refuses connections costs next to nothing.
"""

from __future__ import annotations

from typing import Any

from celery.app.amqp import AMQP
from kombu.connection import Connection

__all__ = ["RECONNECT_MAX_INTERVAL_SECONDS", "AiaAMQP", "BrokerConnection"]

RECONNECT_MAX_INTERVAL_SECONDS = 2.0


class BrokerConnection(Connection):
    """A kombu Connection whose reconnect loop waits at most a couple of seconds."""

    def ensure_connection(
        self,
        errback: Any = None,
        max_retries: int | None = None,
        interval_start: float = 1.0,
        interval_step: float = 1.0,
        interval_max: float = RECONNECT_MAX_INTERVAL_SECONDS,
        **kwargs: Any,
    ) -> Connection:
        return super().ensure_connection(  # type: ignore[no-any-return,no-untyped-call]
            errback,
            max_retries,
            min(interval_start, RECONNECT_MAX_INTERVAL_SECONDS),
            min(interval_step, RECONNECT_MAX_INTERVAL_SECONDS),
            min(interval_max, RECONNECT_MAX_INTERVAL_SECONDS),
            **kwargs,
        )


class AiaAMQP(AMQP):  # type: ignore[misc]
    """Celery's AMQP helper, making BrokerConnections."""

    Connection = BrokerConnection
    BrokerConnection = BrokerConnection
