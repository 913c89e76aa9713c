"""The recorder process: copies task events from Redis into the database, in batches.

It runs as its own process (``aia recorder``) so the API's event loop never
shares a GIL with database writes. Every recorder is a consumer of one group
on the recorder stream, so several can run side by side. An entry is
acknowledged only after its batch is committed, and entries left pending by
a recorder that died are claimed by another, so each event reaches the
database at least once; the upsert makes that idempotent.
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
import sqlalchemy.exc
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.recorder import apply_rows, merge_events
from aia_workers.events import RECORDER_STREAM
from aia_workers.webhooks.outbox import WAKE_CHANNEL, publish_many
from aia_workers.webhooks.task_events import task_finished_events

__all__ = ["DEAD_LETTERS", "GROUP", "Recorder"]

log = logging.getLogger(__name__)

GROUP = "recorder"
# Entries the recorder could not write, kept for a person to look at.
DEAD_LETTERS = "aia:recorder:dead"
_DATABASE_DOWN = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
_CLAIM_IDLE_MS = 60_000
_CLAIM_EVERY_SECONDS = 30.0


class Recorder:
    """Consumes the recorder stream until ``stop`` is set."""

    def __init__(
        self,
        client: redis.Redis,
        sessions: sessionmaker[Session],
        *,
        batch: int = 500,
        consumer: str | None = None,
        claim_idle_ms: int = _CLAIM_IDLE_MS,
        linger_seconds: float = 0.0,
    ) -> None:
        self._redis = client
        self._sessions = sessions
        self._batch = batch
        self._consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self._claim_idle_ms = claim_idle_ms
        self._linger = linger_seconds
        self.recorded = 0

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
                    if self.step(block_ms=1000) < self._batch and self._linger:
                        # A part batch: let more events gather rather than
                        # paying a transaction for every few of them.
                        stop.wait(self._linger)
                    backoff = 0.5
            except (redis.RedisError, OSError) as exc:
                log.warning("recorder: %s; retrying in %.1f s", exc, backoff)
            except Exception:
                log.exception("recorder: batch failed; retrying in %.1f s", backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    def _ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(RECORDER_STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def claim_abandoned(self) -> int:
        """Record entries another recorder read but never acknowledged."""
        start: Any = "0-0"
        claimed_total = 0
        while True:
            reply: list[Any] = self._redis.xautoclaim(
                RECORDER_STREAM,
                GROUP,
                self._consumer,
                self._claim_idle_ms,
                start,
                count=self._batch,
            )
            start, claimed = reply[0], reply[1]
            if claimed:
                self._record(claimed)
                claimed_total += len(claimed)
            if start in ("0-0", b"0-0"):
                return claimed_total

    def step(self, block_ms: int) -> int:
        """Record the next batch; returns how many entries it held."""
        reply: list[Any] = self._redis.xreadgroup(  # type: ignore[assignment]
            GROUP, self._consumer, {RECORDER_STREAM: ">"}, count=self._batch, block=block_ms
        )
        count = 0
        for _, entries in reply or []:
            self._record(entries)
            count += len(entries)
        return count

    def _record(self, entries: Sequence[tuple[Any, dict[str, str]]]) -> None:
        # Entries trimmed from the stream come back from XAUTOCLAIM without fields.
        rows = [fields for _, fields in entries if fields]
        if rows:
            try:
                self._write(rows)
            except _DATABASE_DOWN:
                raise  # nothing is acknowledged; the batch is read again later
            except Exception:
                # One bad entry must not hold back every entry after it forever:
                # write them one by one and park the ones that still fail.
                rows = [row for row in rows if self._write_or_park(row)]
        self._redis.xack(RECORDER_STREAM, GROUP, *[entry_id for entry_id, _ in entries])
        self.recorded += len(rows)

    def _write(self, rows: Sequence[dict[str, str]]) -> None:
        merged = merge_events(rows)
        with self._sessions.begin() as session:
            apply_rows(session, merged)
            # The ends of tasks go to the webhook outbox in the same transaction.
            announced = publish_many(session, task_finished_events(merged))
        if announced:
            try:
                self._redis.publish(WAKE_CHANNEL, len(announced))
            except redis.RedisError:
                log.warning("recorder: could not wake the webhook relay; it polls anyway")

    def _write_or_park(self, row: dict[str, str]) -> bool:
        try:
            self._write([row])
        except _DATABASE_DOWN:
            raise
        except Exception as exc:
            log.error("recorder: parking an entry it cannot write: %s", exc)
            parked: dict[Any, Any] = {**row, "error": f"{type(exc).__name__}: {exc}"[:500]}
            self._redis.xadd(
                DEAD_LETTERS,
                parked,
                maxlen=10_000,
                approximate=True,
            )
            return False
        return True
