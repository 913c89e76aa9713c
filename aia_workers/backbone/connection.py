"""The broker connection every AIA process uses: it retries often while the broker is away.

Celery's consumer reconnects with kombu's defaults, waiting 2 s, then 4 s, and
up to 30 s between attempts, so after a minute-long outage a worker could sit
idle for half a minute with the broker back. Capping the wait keeps the time
from "broker back" to "consuming again" within a few seconds; an attempt
against a host that refuses connections costs next to nothing.

It also carries the one repair AIA needs in kombu's Redis transport: see
``_RedisChannel``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from celery.app.amqp import AMQP
from kombu.connection import Connection
from kombu.transport import redis as kombu_redis

__all__ = ["RECONNECT_MAX_INTERVAL_SECONDS", "AiaAMQP", "BrokerConnection", "RedisTransport"]

RECONNECT_MAX_INTERVAL_SECONDS = 2.0


class _RedisChannel(kombu_redis.Channel):
    """Answers a detached transport with a connection error, which kombu and Celery expect.

    When Redis goes away while the consumer waits on BRPOP, closing its channel
    fails half-way; Celery then closes the whole connection, which detaches the
    transport (``transport.client = None``) and closes the channel again. That
    second close puts the channel's unacknowledged messages back, and building
    a Redis client from the detached transport raised ``AttributeError:
    'NoneType' object has no attribute 'hostname'`` (kombu#582), an error
    Celery does not expect there, so the worker exited. As a connection error
    it is ignored like any other failure to reach Redis while closing; the
    messages are still in Redis's unacked set and come back after the
    visibility timeout.
    """

    _shared_client: redis.Redis | None = None

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was closed")
        return super()._connparams(asynchronous)  # type: ignore[no-untyped-call]

    @contextmanager
    def conn_or_acquire(self, client: redis.Redis | None = None) -> Iterator[redis.Redis]:
        # kombu builds a client object for every ack, every unacked record and
        # every event it publishes; a client is only a handle on the pool and
        # safe to share between threads, so one per pool does.
        if client is not None:
            yield client
            return
        pool = self.pool
        shared = self._shared_client
        if shared is None or shared.connection_pool is not pool:
            shared = self._shared_client = self._create_client()  # type: ignore[no-untyped-call]
        yield shared


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with ``_RedisChannel``."""

    Channel = _RedisChannel


class BrokerConnection(Connection):
    """A kombu Connection whose reconnect loop waits at most a couple of seconds."""

    def get_transport_cls(self) -> Any:
        transport = super().get_transport_cls()  # type: ignore[no-untyped-call]
        return RedisTransport if transport is kombu_redis.Transport else transport

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
