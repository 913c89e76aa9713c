"""Fan-out of task events: one Redis pub/sub connection per API process.

Each SSE stream or WebSocket holds a Subscription with a bounded buffer. The
hub's single reader parses every message once and appends it to the buffers
of the subscriptions on its channel; a subscription whose buffer is full is
detached and told so, so one slow client never holds back the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

__all__ = ["Hub", "Subscription", "SubscriptionLost"]

log = logging.getLogger(__name__)


class SubscriptionLost(Exception):
    """Raised to a consumer whose subscription was dropped (slow, or Redis went away)."""


class Subscription:
    """A bounded inbox of events (and, for WebSockets, commands) for one client."""

    __slots__ = ("_items", "_limit", "_ready", "channels", "lost")

    def __init__(self, limit: int) -> None:
        self._items: deque[Any] = deque()
        self._limit = limit
        self._ready = asyncio.Event()
        self.channels: set[str] = set()
        self.lost: str | None = None

    def put(self, item: Any) -> bool:
        """Queue ``item``; False (and the subscription is lost) when the buffer is full."""
        if self.lost is not None:
            return False
        if len(self._items) >= self._limit:
            self.drop(f"the client fell more than {self._limit} events behind")
            return False
        self._items.append(item)
        self._ready.set()
        return True

    def drop(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
            self._items.clear()
        self._ready.set()

    async def get(self, wait_seconds: float | None = None) -> list[Any]:
        """Everything queued so far; [] after ``wait_seconds`` with nothing new."""
        if not self._items and self.lost is None:
            self._ready.clear()
            if wait_seconds is None:
                await self._ready.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), wait_seconds)
        if self.lost is not None:
            raise SubscriptionLost(self.lost)
        items = list(self._items)
        self._items.clear()
        return items


class Hub:
    """Subscribes to Redis channels on behalf of many local subscribers."""

    def __init__(self, client: aioredis.Redis, *, confirm_timeout: float = 5.0) -> None:
        self._client = client
        self._confirm_timeout = confirm_timeout
        self._pubsub: PubSub | None = None
        # Many subscribers arrive at once after a start or a reconnect; only one
        # of them may open the pub/sub connection.
        self._connecting = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._channels: dict[str, set[Subscription]] = {}
        # How each channel's messages are read, once for all its subscribers.
        self._parsers: dict[str, Callable[[Any], Any]] = {}
        # One future per SUBSCRIBE sent, resolved by its confirmation, in order.
        self._confirmations: dict[str, deque[asyncio.Future[None]]] = {}
        self.messages = 0

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._channels.values())

    async def attach(
        self, sub: Subscription, channel: str, parse: Callable[[Any], Any] = orjson.loads
    ) -> None:
        """Deliver ``channel`` to ``sub``, each message as ``parse`` reads it (JSON by
        default); returns once Redis confirms the subscription."""
        subs = self._channels.get(channel)
        waiter: asyncio.Future[None] | None
        if subs is None:
            subs = self._channels[channel] = set()
            self._parsers[channel] = parse
            fresh: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._confirmations.setdefault(channel, deque()).append(fresh)
            waiter = fresh
            subs.add(sub)
            sub.channels.add(channel)
            try:
                pubsub = await self._connected_pubsub()
                await pubsub.subscribe(channel)
            except Exception:
                self._forget(sub, channel)
                raise
            self._ensure_reader()
        else:
            subs.add(sub)
            sub.channels.add(channel)
            pending = self._confirmations.get(channel)
            waiter = pending[-1] if pending else None
        await self._confirm(sub, channel, waiter)

    async def _confirm(
        self, sub: Subscription, channel: str, waiter: asyncio.Future[None] | None
    ) -> None:
        if waiter is not None and not waiter.done():
            try:
                await asyncio.wait_for(asyncio.shield(waiter), self._confirm_timeout)
            except BaseException:
                await self.detach(sub, channel)
                raise
        if sub.lost is not None:
            raise SubscriptionLost(sub.lost)

    async def detach(self, sub: Subscription, channel: str | None = None) -> None:
        """Stop delivering ``channel`` (or every channel) to ``sub``."""
        for name in [channel] if channel else list(sub.channels):
            if self._forget(sub, name) and self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(name)

    def _forget(self, sub: Subscription, channel: str) -> bool:
        """Remove ``sub`` from ``channel``; True when nobody here listens to it any more."""
        sub.channels.discard(channel)
        subs = self._channels.get(channel)
        if subs is None:
            return False
        subs.discard(sub)
        if subs:
            return False
        del self._channels[channel]
        self._parsers.pop(channel, None)
        return True

    async def _connected_pubsub(self) -> PubSub:
        async with self._connecting:
            if self._pubsub is None:
                pubsub = self._client.pubsub()
                await pubsub.connect()  # type: ignore[no-untyped-call]
                self._pubsub = pubsub
            return self._pubsub

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="aia-hub-reader")

    async def _read(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=None)
                if message is not None:
                    self._dispatch(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("lost the Redis pub/sub connection: %s", exc)
            self._fail_all("the event stream lost its connection to Redis; reconnect to resume")
            self._pubsub = None
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        name = message["channel"]
        name = name.decode() if isinstance(name, bytes) else name
        if kind == "subscribe":
            pending = self._confirmations.get(name)
            if pending:
                waiter = pending.popleft()
                if not pending:
                    del self._confirmations[name]
                if not waiter.done():
                    waiter.set_result(None)
            return
        if kind != "message":
            return
        subs = self._channels.get(name)
        if not subs:
            return
        self.messages += 1
        parse: Callable[[Any], Any] = self._parsers.get(name, orjson.loads)
        event = parse(message["data"])
        for sub in list(subs):
            if not sub.put(event):
                for ch in list(sub.channels):
                    if self._forget(sub, ch):
                        asyncio.get_running_loop().create_task(self._unsubscribe(ch))

    async def _unsubscribe(self, channel: str) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.unsubscribe(channel)

    def _fail_all(self, reason: str) -> None:
        for subs in self._channels.values():
            for sub in subs:
                sub.drop(reason)
                sub.channels.clear()
        self._channels.clear()
        self._parsers.clear()
        for pending in self._confirmations.values():
            for waiter in pending:
                # Waiters then find their subscription lost and raise.
                if not waiter.done():
                    waiter.set_result(None)
        self._confirmations.clear()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self._fail_all("the server is shutting down; reconnect to resume")
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None
