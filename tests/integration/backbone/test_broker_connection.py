"""AIA's broker connection: closing after Celery detached the transport, or acknowledging on a
channel a reconnect closed, is a connection error."""

from __future__ import annotations

import pytest
import redis
from kombu import Queue
from kombu.exceptions import OperationalError

from aia_workers.backbone.connection import (
    RECONNECT_MAX_INTERVAL_SECONDS,
    BrokerConnection,
    RedisTransport,
)

pytestmark = pytest.mark.integration


def _take_two(conn: BrokerConnection, queue: Queue) -> list[object]:
    with conn.Producer() as producer:
        for n in range(2):
            producer.publish({"n": n}, routing_key=queue.name, declare=[queue])
    taken: list[object] = []
    with conn.Consumer(queue, callbacks=[lambda _body, message: taken.append(message)]):
        while len(taken) < 2:
            conn.drain_events(timeout=5)
    return taken


def test_closing_a_detached_redis_connection_keeps_its_messages(redis_url: str) -> None:
    conn = BrokerConnection(redis_url)
    assert conn.get_transport_cls() is RedisTransport
    taken = _take_two(conn, Queue("aia-test-detached", routing_key="aia-test-detached"))
    assert len(taken) == 2
    # What Celery's consumer does when the broker drops: collect() detaches the
    # transport, then close() closes the default channel a second time.
    conn._do_close_transport()
    conn.close()  # stock kombu raised AttributeError here and the worker exited
    unacked = redis.Redis.from_url(redis_url).hlen("unacked")
    assert unacked == 2, "the messages must stay for the visibility sweep to hand back"


def test_reconnect_attempts_wait_at_most_a_couple_of_seconds() -> None:
    waits: list[float] = []
    conn = BrokerConnection("redis://127.0.0.1:1/0", connect_timeout=0.2)
    with pytest.raises(OperationalError):
        conn.ensure_connection(errback=lambda _exc, interval: waits.append(interval), max_retries=3)
    assert waits, "no retry happened"
    assert max(waits) <= RECONNECT_MAX_INTERVAL_SECONDS


def test_an_ack_on_a_channel_closed_by_a_reconnect_is_a_connection_error(redis_url: str) -> None:
    conn = BrokerConnection(redis_url)
    taken = _take_two(conn, Queue("aia-test-closed-ack", routing_key="aia-test-closed-ack"))
    # A late ack of a task that ran across a reconnect reaches the old channel,
    # whose transport kombu has let go of; the worker's ack wrapper logs a
    # connection error and carries on, where an AttributeError stopped the worker.
    channel = taken[0].channel  # type: ignore[attr-defined]
    conn._do_close_transport()
    conn.close()
    if channel.connection is not None:
        # How the consumer's channel is let go of in a worker's reconnect.
        channel.connection.close_channel(channel)
    assert channel.connection is None
    with pytest.raises(redis.exceptions.ConnectionError):
        taken[0].ack()  # type: ignore[attr-defined]
    assert redis.Redis.from_url(redis_url).hlen("unacked") == 2
