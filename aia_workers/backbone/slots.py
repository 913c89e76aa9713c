"""Keeps the slots of the tasks a process runs from lapsing, while it lives.

A tenant's slot on a queue (``aia_workers.backbone.fairness``) lapses a lease after it
was last renewed, so that a process killed while running tasks gives their
slots back by itself. One thread per process renews the slots of the tasks it
runs, three times per lease; a prefork child has its own, made after the fork.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import redis

from aia_workers.backbone.keys import task_key
from aia_workers.backbone.publisher import get_publisher
from aia_workers.backbone.scripts import RENEW_SLOT_LUA, RenewSlotCall

__all__ = ["SlotKeeper", "get_keeper"]

log = logging.getLogger(__name__)


class SlotKeeper:
    """Renews the slots held by the tasks running in this process."""

    def __init__(self, client: redis.Redis, *, lease_seconds: float) -> None:
        self._client = client
        self._lease = lease_seconds
        self._script = client.register_script(RENEW_SLOT_LUA)
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, task_id: str, slot: str) -> None:
        """Renew ``task_id``'s ``slot`` until ``release``."""
        with self._lock:
            self._held[task_id] = slot
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="aia-slots", daemon=True)
            self._thread.start()

    def release(self, task_id: str) -> None:
        """Stop renewing; the task's outcome gives the slot back."""
        with self._lock:
            self._held.pop(task_id, None)

    def renew(self) -> int:
        """Renew every held slot now; the number still held."""
        with self._lock:
            held = list(self._held.items())
        if not held:
            return 0
        lapses = repr(time.time() + self._lease)
        pipe = self._client.pipeline(transaction=False)
        for task_id, slot in held:
            keys, args = RenewSlotCall(task_key(task_id), slot, task_id, lapses).keys_and_args()
            self._script(keys=keys, args=args, client=pipe)
        return sum(int(r) for r in pipe.execute())

    def _run(self) -> None:
        while True:
            time.sleep(self._lease / 3)
            try:
                self.renew()
            except redis.RedisError as exc:
                # A slot outlives two missed renewals; the next one may get through.
                log.warning("could not renew the slots of running tasks: %s", exc)
            except Exception:
                # A keeper that died would let its tasks' slots lapse while they run.
                log.exception("could not renew the slots of running tasks")


_state: tuple[int, SlotKeeper] | None = None


def get_keeper() -> SlotKeeper | None:
    """This process's keeper, made on first use after start or fork; None without a fair share."""
    global _state
    publisher = get_publisher()
    if publisher.fair is None:
        return None
    pid = os.getpid()
    if _state is None or _state[0] != pid:
        _state = (pid, SlotKeeper(publisher.client, lease_seconds=publisher.fair.lease_seconds))
    return _state[1]
