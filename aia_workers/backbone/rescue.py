"""Queues again a task whose message a dying worker took off Redis but never recorded.

kombu's Redis transport takes a message with BRPOP and then, in a second
round trip, records it as unacknowledged. A worker killed between the two (or
whose BRPOP reply was in flight when its connection dropped) takes the message
with it: it is in no queue and no unacked set, and the task waits forever.

So the API records every task it queues on Redis in a per-queue index of
pending tasks, with the exact message (``SUBMIT_LUA``); a task's start takes
it out (``TRANSITION_LUA``). A worker sweeps the queues it consumes: a task
pending for longer than the grace period, still ``queued``, held by no worker,
and no longer in its list is queued again, at the end that is read next. The
last checks run atomically in ``RESCUE_LUA``, a moment after the first look,
so a live worker's pop-then-record gap (a millisecond) is never taken for a
loss.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from aia_workers.backbone.keys import pending_key, task_key
from aia_workers.backbone.scripts import RESCUE_LUA, RescueCall

__all__ = ["Rescuer"]

log = logging.getLogger(__name__)

_BATCH = 200


@dataclass(frozen=True, slots=True)
class _Suspect:
    task_id: str
    queue: str
    broker_key: str


class Rescuer:
    """Sweeps one broker Redis for lost task messages; ``sweep`` is safe to run anywhere."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        grace_seconds: float,
        unacked_key: str = "unacked",
        recheck_seconds: float = 1.0,
    ) -> None:
        self._client = client
        self._grace = grace_seconds
        self._unacked = unacked_key
        self._recheck = recheck_seconds
        self._script = client.register_script(RESCUE_LUA)
        self.rescued = 0

    def sweep(self, queues: Sequence[str]) -> list[str]:
        """Queue again every lost task of ``queues``; the ids queued again."""
        suspects = [s for queue in queues for s in self._suspects(queue)]
        if not suspects:
            return []
        # A live worker between its BRPOP and its bookkeeping looks the same
        # as a dead one for a millisecond; it does not a second later.
        time.sleep(self._recheck)
        rescued = []
        for suspect in suspects:
            keys, args = RescueCall(
                task=task_key(suspect.task_id),
                unacked=self._unacked,
                task_list=suspect.broker_key,
                pending=pending_key(suspect.queue),
                task_id=suspect.task_id,
                now=repr(time.time()),
            ).keys_and_args()
            if self._script(keys=keys, args=args):
                rescued.append(suspect.task_id)
        if rescued:
            self.rescued += len(rescued)
            log.warning(
                "queued %d task(s) again whose message a lost worker had taken: %s",
                len(rescued),
                ", ".join(rescued[:10]),
            )
        return rescued

    def _suspects(self, queue: str) -> list[_Suspect]:
        key = pending_key(queue)
        cutoff = time.time() - self._grace
        ids = [_text(i) for i in self._client.zrangebyscore(key, "-inf", cutoff, 0, _BATCH)]
        if not ids:
            return []
        pipe = self._client.pipeline(transaction=False)
        for task_id in ids:
            pipe.hmget(task_key(task_id), "status", "broker_key", "created_at")
            pipe.hexists(self._unacked, task_id)
        replies = pipe.execute()
        suspects: list[_Suspect] = []
        for task_id, fields, held in zip(ids, replies[::2], replies[1::2], strict=True):
            status, broker_key, created = (_text(f) if f is not None else None for f in fields)
            if status != "queued" or broker_key is None:
                self._client.zrem(key, task_id)
            elif not held and not self._may_still_be_queued(broker_key, created):
                suspects.append(_Suspect(task_id, queue, broker_key))
        return suspects

    def _may_still_be_queued(self, broker_key: str, created: str | None) -> bool:
        # Lists are read from the tail, oldest first: a task older than the
        # tail's has been read, unless it was put back at the head (a restore),
        # which RESCUE_LUA's exact LPOS tells apart.
        tail = self._client.lindex(broker_key, -1)
        if tail is None or created is None:
            return False
        tail_id = _message_task_id(tail)
        tail_created = self._client.hget(task_key(tail_id), "created_at") if tail_id else None
        if tail_created is None:
            return True
        return float(_text(tail_created)) <= float(created)


def _message_task_id(raw: Any) -> str | None:
    try:
        headers = orjson.loads(raw).get("headers") or {}
    except orjson.JSONDecodeError:
        return None
    task_id = headers.get("id")
    return str(task_id) if task_id else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
