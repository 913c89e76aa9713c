"""The recorder process: copies task events from Redis into the database, in batches.

It runs as its own process (``aia recorder``) so the API's event loop never
shares a GIL with database writes. Every recorder is a consumer of one group
on the recorder stream, so several can run side by side. An entry is
acknowledged only after its batch is committed, and entries left pending by
a recorder that died are claimed by another, so each event reaches the
database at least once; the upsert makes that idempotent.

While the database is unreachable nothing is acknowledged and nothing is
parked: the entries wait, pending or unread, in the stream, and the recorder
tries again with backoff, starting from the batch it could not write.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.backbone.history_writer import apply_rows, merge_events
from aia_workers.backbone.keys import RECORDER_DEAD_LETTERS, RECORDER_STREAM
from aia_workers.backbone.stream_groups import claim_idle, ensure_group
from aia_workers.db.session import DATABASE_DOWN
from aia_workers.tracing.runtime import get_tracer
from aia_workers.webhooks.outbox import WAKE_CHANNEL, publish_many
from aia_workers.webhooks.task_events import task_finished_events
from aia_workers.webhooks.traced_events import announcing

__all__ = ["GROUP", "Recorder"]

log = logging.getLogger(__name__)

GROUP = "recorder"
_CLAIM_IDLE_MS = 60_000
_CLAIM_EVERY_SECONDS = 30.0
_FIRST_RETRY_SECONDS = 0.5
# Short enough that history catches up within seconds of the database's return.
_DATABASE_RETRY_MAX_SECONDS = 2.0


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
        # Entries this consumer read and has not acknowledged: after a failed
        # batch they are read again first, rather than left for claim_abandoned
        # to find once they have been idle for a minute.
        self._own_pending = True

    def run(self, stop: threading.Event) -> None:
        backoff = _FIRST_RETRY_SECONDS
        while not stop.is_set():
            delay = backoff
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
                    backoff = _FIRST_RETRY_SECONDS
            except DATABASE_DOWN as exc:
                delay = min(backoff, _DATABASE_RETRY_MAX_SECONDS) * random.uniform(0.8, 1.2)
                log.warning(
                    "recorder: the database is unreachable (%s); entries wait in the stream, "
                    "retrying in %.1f s",
                    _first_line(exc),
                    delay,
                )
            except (redis.RedisError, OSError) as exc:
                log.warning("recorder: %s; retrying in %.1f s", exc, backoff)
            except Exception:
                log.exception("recorder: batch failed; retrying in %.1f s", backoff)
            self._own_pending = True
            stop.wait(delay)
            backoff = min(backoff * 2, 30.0)

    def _ensure_group(self) -> None:
        ensure_group(self._redis, RECORDER_STREAM, GROUP, start="0")

    def claim_abandoned(self) -> int:
        """Record entries another recorder read but never acknowledged."""
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
                self._record(claimed.entries)
                claimed_total += len(claimed.entries)
        while self._own_pending:
            self._own_pending = self._read("0", None) > 0
        return claimed_total

    def step(self, block_ms: int) -> int:
        """Record the next batch; returns how many entries it held."""
        if self._own_pending:
            # "0" reads this consumer's unacknowledged entries, oldest first, without blocking.
            count = self._read("0", None)
            if count:
                return count
            self._own_pending = False
        return self._read(">", block_ms)

    def _read(self, start: str, block_ms: int | None) -> int:
        reply: list[Any] = self._redis.xreadgroup(  # type: ignore[assignment]
            GROUP, self._consumer, {RECORDER_STREAM: start}, count=self._batch, block=block_ms
        )
        count = 0
        for _, entries in reply or []:
            # Reading from "0" answers the stream with no entries once none are pending.
            if entries:
                self._record(entries)
                count += len(entries)
        return count

    def _record(self, entries: Sequence[tuple[Any, dict[str, str]]]) -> None:
        # Entries trimmed from the stream come back from XAUTOCLAIM without fields.
        rows = [fields for _, fields in entries if fields]
        if rows:
            try:
                self._write(rows)
            except DATABASE_DOWN:
                raise  # nothing is acknowledged; the batch is read again later
            except Exception:
                # A database going away mid-batch can fail in other ways too:
                # unless it still answers, no entry is to blame.
                self._ping()
                # One bad entry must not hold back every entry after it forever:
                # write them one by one and park the ones that still fail.
                rows = [row for row in rows if self._write_or_park(row)]
        self._redis.xack(RECORDER_STREAM, GROUP, *[entry_id for entry_id, _ in entries])
        self.recorded += len(rows)

    def _write(self, rows: Sequence[dict[str, str]]) -> None:
        merged = merge_events(rows)
        # While tracing is on, announcing a traced task's end is a span of its trace.
        with (
            announcing(get_tracer(), task_finished_events(merged)) as events,
            self._sessions.begin() as session,
        ):
            apply_rows(session, merged)
            # The ends of tasks go to the webhook outbox in the same transaction.
            announced = publish_many(session, events)
        if announced:
            try:
                self._redis.publish(WAKE_CHANNEL, len(announced))
            except redis.RedisError:
                log.warning("recorder: could not wake the webhook relay; it polls anyway")

    def _write_or_park(self, row: dict[str, str]) -> bool:
        try:
            self._write([row])
        except DATABASE_DOWN:
            raise
        except Exception as exc:
            self._ping()
            log.error("recorder: parking an entry it cannot write: %s", exc)
            parked: dict[Any, Any] = {**row, "error": f"{type(exc).__name__}: {exc}"[:500]}
            self._redis.xadd(
                RECORDER_DEAD_LETTERS,
                parked,
                maxlen=10_000,
                approximate=True,
            )
            return False
        return True

    def _ping(self) -> None:
        """Raise the database's error when it does not answer."""
        with self._sessions() as session:
            session.execute(text("SELECT 1"))


def _first_line(exc: Exception) -> str:
    # SQLAlchemy appends a paragraph and a link to the driver's message.
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
