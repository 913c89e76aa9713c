"""Celery messages built without a round trip through kombu.

The API enqueues onto a Redis broker by LPUSHing the exact envelope that
kombu's Redis transport would write (Celery message protocol 2), inside the
same Lua call that records the task. That keeps the submit path to one
non-blocking round trip; a unit test holds this module to what Celery and
kombu themselves produce.
"""

from __future__ import annotations

import base64
import os
import socket
from bisect import bisect
from datetime import datetime
from typing import Any

import orjson

__all__ = [
    "PRIORITY_MAX",
    "REDIS_PRIORITY_STEPS",
    "broker_priority",
    "celery_message",
    "redis_queue_key",
    "sent_event",
    "sent_event_channel",
]

PRIORITY_MAX = 9
# kombu's Redis transport keeps one list per priority step and pops them in order.
REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
_REDIS_PRIORITY_SEP = "\x06\x16"
_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def broker_priority(priority: int | None, *, redis: bool) -> int | None:
    """Map AIA's priority (0-9, higher runs sooner) onto the broker's scale.

    RabbitMQ serves higher numbers first; kombu's Redis transport serves lower
    numbers first, so the scale is flipped there.
    """
    if priority is None:
        return None
    return PRIORITY_MAX - priority if redis else priority


def redis_queue_key(queue: str, broker_prio: int | None) -> str:
    """The Redis list kombu reads ``queue`` from for a message of this priority."""
    if not broker_prio:
        return queue
    step = REDIS_PRIORITY_STEPS[bisect(REDIS_PRIORITY_STEPS, broker_prio) - 1]
    return queue if step == 0 else f"{queue}{_REDIS_PRIORITY_SEP}{step}"


def celery_message(
    *,
    task_id: str,
    name: str,
    kwargs: dict[str, Any],
    queue: str,
    eta: datetime | None = None,
    broker_prio: int | None = None,
    delivery_tag: str | None = None,
    traceparent: str | None = None,
) -> str:
    """The JSON envelope kombu's Redis transport stores for ``send_task``.

    The delivery tag is the task id unless given (a second message of the
    same task, held while the first is, needs a tag of its own). A
    ``traceparent`` (W3C) names the span the task's run continues, as a
    header of the message like any Celery sender's custom header.
    """
    body = orjson.dumps([[], kwargs, _EMBED])
    headers: dict[str, Any] = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": None,
        "eta": eta.isoformat() if eta else None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "()",
        "kwargsrepr": _kwargsrepr(kwargs),
        "origin": _ORIGIN,
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    if traceparent:
        headers["traceparent"] = traceparent
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": broker_prio or 0,
            "body_encoding": "base64",
            # Unique among in-flight messages, which is all kombu asks of it;
            # a retry is a new message with a tag of Celery's own.
            "delivery_tag": delivery_tag or task_id,
        },
    }
    return orjson.dumps(envelope).decode()


def _kwargsrepr(kwargs: dict[str, Any]) -> str:
    # Flower shows this; keep it bounded as Celery's saferepr does.
    text = repr(kwargs)
    return text if len(text) <= 1024 else text[:1021] + "..."


def sent_event_channel(redis_db: int) -> str:
    """The pub/sub channel kombu's Redis transport uses for Celery's ``task-sent`` events."""
    return f"/{redis_db}.celeryev/task.sent"


def sent_event(
    *,
    task_id: str,
    name: str,
    kwargs: dict[str, Any],
    queue: str,
    eta: datetime | None,
    timestamp: float,
) -> str:
    """The ``task-sent`` event Celery would publish, so Flower sees tasks from the start."""
    event = {
        "hostname": _ORIGIN,
        "utcoffset": 0,
        "pid": os.getpid(),
        "clock": 0,
        "uuid": task_id,
        "root_id": task_id,
        "parent_id": None,
        "name": name,
        "args": "()",
        "kwargs": _kwargsrepr(kwargs),
        "retries": 0,
        "eta": eta.isoformat() if eta else None,
        "expires": None,
        "queue": queue,
        "exchange": "",
        "routing_key": queue,
        "timestamp": timestamp,
        "type": "task-sent",
    }
    envelope = {
        "body": base64.b64encode(orjson.dumps(event)).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": _ORIGIN},
        "properties": {
            "delivery_mode": 1,
            "delivery_info": {"exchange": "celeryev", "routing_key": "task.sent"},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": f"{task_id}.sent",
        },
    }
    return orjson.dumps(envelope).decode()
