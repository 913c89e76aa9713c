"""Coalescing concurrent calls of one Lua script into a single pipelined round trip.

Under load many submit requests are in flight on one event loop at once. Each
call joins the batch that is waiting for the next turn of the loop, and the
whole batch goes to Redis as one pipeline: one write, one read, one connection
checkout, however many requests it carries. With no concurrency a batch holds
one call and costs what a lone EVALSHA costs.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

__all__ = ["ScriptBatcher"]


class ScriptBatcher:
    """Runs one Lua script for many concurrent callers, a pipeline per loop turn."""

    def __init__(self, client: aioredis.Redis, source: str, *, max_batch: int = 256) -> None:
        self._client = client
        self._source = source
        self._sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
        self._max_batch = max_batch
        self._pending: list[tuple[Sequence[Any], Sequence[Any], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._inflight: set[asyncio.Task[None]] = set()

    async def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((keys, args, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            # Keep a reference until done: the loop holds tasks only weakly.
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _send(
        self, batch: list[tuple[Sequence[Any], Sequence[Any], asyncio.Future[Any]]]
    ) -> None:
        try:
            results = await self._run(batch)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                # Redis restarted or its script cache was flushed: load and rerun those.
                await self._client.script_load(self._source)
                rerun = await self._run([batch[i] for i in missing])
                for i, result in zip(missing, rerun, strict=True):
                    results[i] = result
        except BaseException as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _run(
        self, batch: Sequence[tuple[Sequence[Any], Sequence[Any], asyncio.Future[Any]]]
    ) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for keys, args, _ in batch:
            pipe.execute_command("EVALSHA", self._sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))
