"""The recorder: copies task events from Redis into the database, in batches.

Every API process runs one consumer of the ``recorder`` group on the recorder
stream. An entry is acknowledged only after its batch is committed, and a
consumer that died leaves its entries pending for another to claim, so each
event reaches the database at least once; the upsert makes that idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

import anyio.to_thread
import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.recorder import apply_events
from aia_workers.events import RECORDER_STREAM

__all__ = ["GROUP", "Recorder"]

log = logging.getLogger(__name__)

GROUP = "recorder"
_CLAIM_IDLE_MS = 60_000


class Recorder:
    """Consumes the recorder stream until stopped."""

    def __init__(
        self, client: aioredis.Redis, sessions: sessionmaker[Session], *, batch: int = 500
    ) -> None:
        self._redis = client
        self._sessions = sessions
        self._batch = batch
        self._consumer = f"{socket.gethostname()}:{os.getpid()}"
        self.recorded = 0

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._ensure_group()
                await self._claim_abandoned()
                while True:
                    await self._step(block_ms=1000)
                    backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recorder failed; retrying in %.1f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(RECORDER_STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _claim_abandoned(self) -> None:
        start = "0-0"
        while True:
            reply: list[Any] = await self._redis.xautoclaim(
                RECORDER_STREAM, GROUP, self._consumer, _CLAIM_IDLE_MS, start, count=self._batch
            )
            start, claimed = reply[0], reply[1]
            if claimed:
                await self._record(claimed)
            if start in ("0-0", b"0-0"):
                return

    async def _step(self, block_ms: int) -> int:
        reply: list[Any] = await self._redis.xreadgroup(  # type: ignore[assignment]
            GROUP, self._consumer, {RECORDER_STREAM: ">"}, count=self._batch, block=block_ms
        )
        count = 0
        for _, entries in reply or []:
            await self._record(entries)
            count += len(entries)
        return count

    async def _record(self, entries: Sequence[tuple[Any, dict[str, str]]]) -> None:
        live = [(entry_id, fields) for entry_id, fields in entries if fields]
        if live:
            await anyio.to_thread.run_sync(self._write, [f for _, f in live])
        await self._redis.xack(RECORDER_STREAM, GROUP, *[entry_id for entry_id, _ in entries])
        self.recorded += len(live)

    def _write(self, rows: list[dict[str, str]]) -> None:
        with self._sessions.begin() as session:
            apply_events(session, rows)
