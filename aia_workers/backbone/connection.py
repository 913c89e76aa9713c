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

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from celery.app.amqp import AMQP
from kombu.connection import Connection
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual as kombu_virtual

__all__ = [
    "ACK_BATCH",
    "ACK_LINGER_SECONDS",
    "RECONNECT_MAX_INTERVAL_SECONDS",
    "AiaAMQP",
    "BrokerConnection",
    "RedisTransport",
]

RECONNECT_MAX_INTERVAL_SECONDS = 2.0
# How long the worker's acks wait for others to share their round trip to Redis,
# and how many share one at most.
ACK_LINGER_SECONDS = 0.02
ACK_BATCH = 32

log = logging.getLogger(__name__)


class _BatchedAckQoS(kombu_redis.QoS):
    """kombu's unacked bookkeeping, with the acks of a few milliseconds sent together.

    kombu removes each acknowledged message from Redis's unacked set with a
    round trip of its own, on the worker's one event-loop thread, which also
    reads every message and records it as unacked. Acks made on that thread
    free their prefetch slot at once but reach Redis in one pipeline
    ``ACK_LINGER_SECONDS`` after the first of them, or at ``ACK_BATCH`` of
    them, or when the channel closes. A worker killed in between leaves those
    messages in the unacked set: they run again after the visibility timeout,
    as any message whose ack was lost does, and the task's record makes a
    finished task's second start a no-op. Acks from other threads (a threads
    pool's) go at once, as kombu sends them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._acked: list[Any] = []
        self._flush_scheduled = False

    def ack(self, delivery_tag: Any) -> None:
        transport = self.channel.connection
        # A channel closed by a reconnect has no transport: kombu's own ack then
        # fails as a connection error, which the ack's caller logs and survives.
        if transport is None or threading.get_ident() != transport.loop_thread:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]
            return
        self._acked.append(delivery_tag)
        kombu_virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]
        if len(self._acked) >= ACK_BATCH:
            self.flush_acks()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            transport.flush_acks_later()

    def flush_acks(self) -> None:
        """Remove the messages acknowledged since the last flush from Redis's unacked set."""
        tags, self._acked = self._acked, []
        self._flush_scheduled = False
        if not tags:
            return
        try:
            with self.pipe_or_acquire() as pipe:
                pipe.zrem(self.unacked_index_key, *tags).hdel(self.unacked_key, *tags).execute()
        except BaseException:
            # Kept for the next flush (or the close) after the consumer reconnects.
            self._acked[:0] = tags
            raise


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

    QoS = _BatchedAckQoS
    _shared_client: redis.Redis | None = None

    def _connparams(self, asynchronous: bool = False) -> Any:
        # A channel let go of by its transport has none; one whose transport was
        # detached from its connection has a transport without a client.
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was closed")
        return super()._connparams(asynchronous)  # type: ignore[no-untyped-call]

    @property
    def pending_acks(self) -> _BatchedAckQoS | None:
        """This channel's QoS when it holds acks not yet sent, else None."""
        qos = self._qos
        return qos if isinstance(qos, _BatchedAckQoS) and qos._acked else None

    def close(self) -> None:
        qos = self.pending_acks
        if qos is not None:
            try:
                qos.flush_acks()
            except redis.RedisError:
                # Those messages run again after the visibility timeout.
                log.warning("could not send %d acks while closing", len(qos._acked))
        super().close()  # type: ignore[no-untyped-call]

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
    """kombu's Redis transport with ``_RedisChannel`` and its batched acks."""

    Channel = _RedisChannel
    # The thread that runs the event loop, and the loop, once registered with one.
    loop_thread: int | None = None
    _loop: Any = None

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)  # type: ignore[no-untyped-call]
        self._loop = loop
        self.loop_thread = threading.get_ident()

    def flush_acks_later(self) -> None:
        """Send the channels' pending acks after ACK_LINGER_SECONDS (on the loop's thread)."""
        self._loop.call_later(ACK_LINGER_SECONDS, self._flush_acks)

    def _flush_acks(self) -> None:
        for channel in self.channels:
            qos = getattr(channel, "pending_acks", None)
            if qos is not None:
                qos.flush_acks()


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
