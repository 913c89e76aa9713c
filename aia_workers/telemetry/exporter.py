"""The worker metrics exporter: counts the task event stream, serves Prometheus.

``aia exporter`` runs one ``EventCounter`` (a consumer of its own group on the
recorder stream, next to the recorder's), a ``CeleryEventCounter`` for the
tasks outside the catalog (``celery_events``), and an HTTP server for the
scrape: the task counters and histograms (``task_metrics``) and the queue
gauges read at each scrape (``queue_gauges``). Nothing runs in the workers for it.

Run one. An exporter that dies leaves its unacknowledged stream entries to be
counted when it is back (or by another exporter of the group, which shares
the stream's entries but would see every Celery event twice). While it is
down, events wait in the stream (as many as ``AIA_RECORDER_MAXLEN`` keeps) and
are counted when it is back; Celery's events of that time are lost.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis

from aia_workers.backbone.keys import RECORDER_STREAM
from aia_workers.backbone.stream_groups import claim_idle, ensure_group
from aia_workers.telemetry.task_metrics import TaskMetrics

__all__ = ["GROUP", "EventCounter"]

log = logging.getLogger(__name__)

GROUP = "metrics"
_CLAIM_IDLE_MS = 60_000
_CLAIM_EVERY_SECONDS = 30.0
# A consumer (an exporter that stopped) with nothing pending and idle this long is forgotten.
_FORGET_IDLE_MS = 3_600_000


class EventCounter:
    """Feeds ``metrics`` from the recorder stream until ``stop`` is set."""

    def __init__(
        self,
        client: redis.Redis,
        metrics: TaskMetrics,
        *,
        batch: int = 1000,
        consumer: str | None = None,
        claim_idle_ms: int = _CLAIM_IDLE_MS,
    ) -> None:
        self._redis = client
        self._metrics = metrics
        self._batch = batch
        self._consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self._claim_idle_ms = claim_idle_ms
        self.counted = 0
        # Entries this consumer read, counted, and may not have acknowledged (the
        # acknowledgement failed): acknowledged without counting them again.
        self._own_pending = True

    def run(self, stop: threading.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                self._ensure_group()
                next_claim = 0.0
                while not stop.is_set():
                    now = time.monotonic()
                    if now >= next_claim:
                        self.claim_abandoned()
                        next_claim = now + _CLAIM_EVERY_SECONDS
                    self.step(block_ms=1000)
                    backoff = 0.5
            except (redis.RedisError, OSError) as exc:
                log.warning("exporter: %s; retrying in %.1f s", exc, backoff)
            except Exception:
                log.exception("exporter: counting failed; retrying in %.1f s", backoff)
            self._own_pending = True
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def _ensure_group(self) -> None:
        # "$": counters start from the first start of the first exporter, not
        # from whatever history the stream still holds.
        ensure_group(self._redis, RECORDER_STREAM, GROUP, start="$")

    def step(self, block_ms: int | None) -> int:
        """Count the next batch of new entries; returns how many entries it held."""
        if self._own_pending:
            self._acknowledge_own()
        reply: Any = self._redis.xreadgroup(
            GROUP, self._consumer, {RECORDER_STREAM: ">"}, count=self._batch, block=block_ms
        )
        count = 0
        for _, entries in reply or []:
            self._count(entries)
            count += len(entries)
        return count

    def claim_abandoned(self) -> int:
        """Count the entries exporters that died read and never acknowledged."""
        claimed_total = 0
        for claimed in claim_idle(
            self._redis,
            RECORDER_STREAM,
            GROUP,
            self._consumer,
            idle_ms=self._claim_idle_ms,
            batch=self._batch,
        ):
            self._own_pending = self._own_pending or claimed.trimmed
            if claimed.entries:
                self._count(claimed.entries)
                claimed_total += len(claimed.entries)
        if self._own_pending:
            self._acknowledge_own()
        self._forget_idle_consumers()
        return claimed_total

    def _count(self, entries: Sequence[tuple[Any, dict[str, str]]]) -> None:
        self.counted += self._metrics.observe(fields for _, fields in entries if fields)
        try:
            self._redis.xack(RECORDER_STREAM, GROUP, *[entry_id for entry_id, _ in entries])
        except redis.RedisError:
            self._own_pending = True
            raise

    def _acknowledge_own(self) -> None:
        while True:
            reply: Any = self._redis.xreadgroup(
                GROUP, self._consumer, {RECORDER_STREAM: "0"}, count=self._batch
            )
            ids = [entry_id for _, entries in reply or [] for entry_id, _ in entries]
            if not ids:
                break
            self._redis.xack(RECORDER_STREAM, GROUP, *ids)
        self._own_pending = False

    def _forget_idle_consumers(self) -> None:
        consumers: Any = self._redis.xinfo_consumers(RECORDER_STREAM, GROUP)
        for consumer in consumers:
            name = consumer["name"]
            idle = int(consumer["idle"]) >= _FORGET_IDLE_MS
            if name != self._consumer and not consumer["pending"] and idle:
                self._redis.xgroup_delconsumer(RECORDER_STREAM, GROUP, name)
