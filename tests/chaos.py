"""Submit load and the audit of what became of it, shared by the fault tests and bench/chaos.py."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import redis

from tests.support import Stack

__all__ = ["Audit", "SubmitLoad", "audit"]

_TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class SubmitLoad:
    """Client threads submitting ``diagnostics.sleep`` over HTTP until stopped.

    Every answer is counted by status; a 503 without ``Retry-After`` and any
    other 5xx are kept apart, since those are the answers a fault must never give.
    """

    stack: Stack
    clients: int = 4
    payload: dict[str, Any] = field(default_factory=lambda: {"seconds": 0.05})
    pause_seconds: float = 0.02
    accepted: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> SubmitLoad:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self) -> None:
        with self.stack.client(timeout=15) as client:
            while not self._stop.is_set():
                self._submit_once(client)
                self._stop.wait(self.pause_seconds)

    def _submit_once(self, client: httpx.Client) -> None:
        body = {"type": "diagnostics.sleep", "payload": self.payload}
        try:
            response = client.post("/v1/tasks", json=body)
        except httpx.HTTPError as exc:
            self._count(f"transport:{type(exc).__name__}", bad=True)
            self._stop.wait(0.1)
            return
        code = response.status_code
        if code == 202:
            with self._lock:
                self.accepted.append(response.json()["id"])
            self._count("202")
        elif code == 503 and response.headers.get("retry-after"):
            self._count("503")
            self._stop.wait(0.1)
        else:
            self._count(str(code), bad=code >= 500)
            self._stop.wait(0.1)

    def _count(self, kind: str, *, bad: bool = False) -> None:
        with self._lock:
            self.answers[kind] += 1
            if bad:
                self.bad.append(kind)


@dataclass(frozen=True)
class Audit:
    """What became of a set of accepted tasks."""

    statuses: Counter[str]
    # Tasks that ended more than once, or started more often than allowed.
    duplicated: list[str]
    unfinished: list[str]

    @property
    def lost(self) -> int:
        return len(self.unfinished)


def audit(client: redis.Redis, task_ids: list[str]) -> Audit:
    """Read every task's record and events from Redis; count outcomes and duplicates."""
    statuses: Counter[str] = Counter()
    duplicated: list[str] = []
    unfinished: list[str] = []
    for start in range(0, len(task_ids), 500):
        chunk = task_ids[start : start + 500]
        pipe = client.pipeline(transaction=False)
        for task_id in chunk:
            pipe.hget(f"aia:task:{task_id}", "status")
            pipe.xrange(f"aia:task:{task_id}:events")
        replies = pipe.execute()
        for task_id, status, events in zip(chunk, replies[::2], replies[1::2], strict=True):
            text = status.decode() if isinstance(status, bytes) else str(status)
            statuses[text] += 1
            if text not in _TERMINAL:
                unfinished.append(task_id)
            ends = sum(1 for _, fields in events if _event_name(fields) in _TERMINAL)
            if ends > 1:
                duplicated.append(task_id)
    return Audit(statuses, duplicated, unfinished)


def _event_name(fields: dict[Any, Any]) -> str:
    raw = fields.get(b"e") or fields.get("e") or b"{}"
    return str(orjson.loads(raw).get("event", ""))


def wait_all_terminal(client: redis.Redis, task_ids: list[str], timeout: float) -> Audit:
    """Audit until every task is terminal, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        result = audit(client, task_ids)
        if not result.unfinished or time.monotonic() >= deadline:
            return result
        time.sleep(0.5)
