"""What waits on each queue: how many messages, and for how long the oldest has waited.

Read by the API's ``/status`` and by the monitoring agent, so the layout of
kombu's Redis lists is known in one place. On a Redis broker a queue is one
list per priority step (``broker.redis_queue_key``); its depth is the sum of
their lengths. On RabbitMQ it is the count a passive declare reports.

A message's wait comes from the pending index that ``SUBMIT_LUA`` keeps per
queue (``keys.pending_key``, scored by when each task was queued, or when a
task put back to wait for a slot is due) and a task's start empties; it exists
only when the API enqueues on Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

import redis
from kombu.connection import Connection

from aia_workers.backbone.broker import REDIS_PRIORITY_STEPS, redis_queue_key
from aia_workers.backbone.keys import pending_key, task_key
from aia_workers.settings import Settings

__all__ = [
    "amqp_depths",
    "ask_depths",
    "ask_oldest",
    "ask_records",
    "broker_depths",
    "oldest_waits",
    "queue_lists",
    "read_depths",
    "read_oldest",
    "redis_depths",
]

# How many of a queue's oldest pending entries are looked at: the index may
# hold a few entries that no longer wait (a task cancelled while queued, a
# future ETA), which the rescuer removes lazily, so the first is not enough.
_OLDEST_PROBE = 16


class _Pipeline(Protocol):
    def llen(self, name: str) -> Any: ...


def queue_lists(queue: str) -> tuple[str, ...]:
    """The Redis lists kombu keeps ``queue``'s messages in, one per priority step."""
    return tuple(redis_queue_key(queue, step) for step in REDIS_PRIORITY_STEPS)


def ask_depths(pipe: _Pipeline, queues: Sequence[str]) -> None:
    """Queue the LLENs of every list of ``queues`` on ``pipe`` (sync or asyncio redis)."""
    for queue in queues:
        for key in queue_lists(queue):
            pipe.llen(key)


def read_depths(replies: Sequence[Any], queues: Sequence[str]) -> dict[str, int]:
    """Each queue's depth from the replies to ``ask_depths`` (in the same order)."""
    steps = len(REDIS_PRIORITY_STEPS)
    return {
        queue: sum(int(n) for n in replies[i * steps : (i + 1) * steps])
        for i, queue in enumerate(queues)
    }


def redis_depths(client: redis.Redis, queues: Sequence[str]) -> dict[str, int]:
    """Each queue's depth on a Redis broker, in one round trip."""
    pipe = client.pipeline(transaction=False)
    ask_depths(pipe, queues)
    return read_depths(pipe.execute(), queues)


def amqp_depths(conn: Any, queues: Iterable[str], *, timeout: float) -> dict[str, int]:
    """Each queue's depth on an AMQP broker through ``conn``, a kombu Connection (blocking).

    A queue never declared (no worker has consumed from it) counts 0.
    """
    depths: dict[str, int] = {}
    conn.ensure_connection(max_retries=1, timeout=timeout)
    channel = conn.default_channel
    for name in queues:
        try:
            declared = channel.queue_declare(queue=name, passive=True)
        except Exception:
            # The failed passive declare closed the channel: the next queue needs another.
            channel = conn.channel()
            depths[name] = 0
            continue
        depths[name] = int(declared.message_count)
    return depths


def broker_depths(
    settings: Settings, client: redis.Redis, queues: Sequence[str], *, timeout: float
) -> dict[str, int]:
    """Each queue's depth on the deployment's broker (blocking); ``client`` is AIA's Redis,
    used when it is the broker too."""
    if settings.broker_is_redis:
        if settings.broker_url == settings.redis_url:
            return redis_depths(client, queues)
        broker = redis.Redis.from_url(settings.broker_url, socket_timeout=timeout)
        try:
            return redis_depths(broker, queues)
        finally:
            broker.close()
    amqp = Connection(settings.broker_url, connect_timeout=timeout)  # type: ignore[no-untyped-call]
    with amqp as conn:
        return amqp_depths(conn, queues, timeout=timeout)


def ask_oldest(pipe: Any, queues: Sequence[str], now: float) -> None:
    """Queue on ``pipe`` the first round trip of ``read_oldest``: each queue's oldest entries."""
    for queue in queues:
        pipe.zrangebyscore(pending_key(queue), "-inf", now, 0, _OLDEST_PROBE, withscores=True)


def ask_records(pipe: Any, candidates: Sequence[Sequence[tuple[Any, float]]]) -> None:
    """Queue on ``pipe`` the second round trip: the status and ETA of each candidate."""
    for entries in candidates:
        for task_id, _ in entries:
            pipe.hmget(task_key(_text(task_id)), "status", "eta")


def read_oldest(
    queues: Sequence[str],
    candidates: Sequence[Sequence[tuple[Any, float]]],
    records: Sequence[Any],
    now: float,
) -> dict[str, float]:
    """Per queue, how long (seconds) its oldest waiting task has waited; 0 when none waits.

    A task waits from when it was queued, or from its ETA or the time it is
    due after being put back for a slot, whichever is later; a task with a
    future ETA does not wait yet.
    """
    replies = iter(records)
    waits: dict[str, float] = {}
    for queue, entries in zip(queues, candidates, strict=True):
        ages = []
        for _, score in entries:
            status, eta = next(replies)
            if status is None or _text(status) != "queued":
                continue
            since = max(float(score), _timestamp(eta))
            if since <= now:
                ages.append(now - since)
        waits[queue] = max(ages, default=0.0)
    return waits


def oldest_waits(client: redis.Redis, queues: Sequence[str], now: float) -> dict[str, float]:
    """``read_oldest`` on a blocking client: two round trips whatever the backlog."""
    pipe = client.pipeline(transaction=False)
    ask_oldest(pipe, queues, now)
    candidates: list[list[tuple[Any, float]]] = pipe.execute()
    pipe = client.pipeline(transaction=False)
    ask_records(pipe, candidates)
    return read_oldest(queues, candidates, pipe.execute(), now)


def _timestamp(eta: Any) -> float:
    if not eta:
        return float("-inf")
    try:
        return datetime.fromisoformat(_text(eta)).timestamp()
    except ValueError:
        return float("-inf")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
