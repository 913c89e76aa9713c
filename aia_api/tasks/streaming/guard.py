"""The open streams of one API process: their slots, and their credentials checked again.

A stream outlives the check its request passed when it opened. So each stream
keeps the credential it was opened with and the guard checks it again when a
revocation is announced (``revoked``, fed by the invalidation channel that every
API process follows), when an access token expires, and every
``recheck_seconds`` in case an announcement was missed or a key expired. A
stream whose credential no longer authenticates, or no longer has the permission
the stream needs, is ended with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

import redis.exceptions

from aia_api.http.problems import Problem
from aia_api.identity.authenticator import Authenticator, Unauthenticated
from aia_api.identity.principal import Principal
from aia_api.identity.roles import Permission
from aia_api.identity.tokens import InvalidTokenError
from aia_api.tasks.hub import Subscription
from aia_api.tasks.streaming.credential import Credential
from aia_api.tasks.streaming.slots import Slot, StreamSlots
from aia_workers.db.session import DATABASE_DOWN

__all__ = ["OpenStream", "StreamGuard"]

log = logging.getLogger(__name__)

# A timer set for a token's expiry may fire a little early; checking then
# finds the token still valid and sets the timer again.
_EXPIRY_MARGIN_SECONDS = 0.05


class OpenStream:
    """One SSE stream or WebSocket: who opened it, with what, and why it was ended."""

    __slots__ = (
        "credential",
        "ended",
        "key_hash",
        "permission",
        "principal",
        "slot",
        "sub",
        "timer",
    )

    def __init__(
        self,
        principal: Principal,
        credential: Credential,
        sub: Subscription,
        slot: Slot,
        permission: Permission = Permission.TASKS_READ,
    ) -> None:
        self.principal = principal
        # What the stream needs to stay open (a task stream tasks:read, a mailbox agents:read).
        self.permission = permission
        self.credential = credential
        self.sub = sub
        self.slot = slot
        self.key_hash = credential.key_hash
        self.ended: Problem | None = None
        self.timer: asyncio.TimerHandle | None = None


class StreamGuard:
    """Opens and closes this process's streams; ends those whose credential lapsed."""

    def __init__(self, slots: StreamSlots, auth: Authenticator, *, recheck_seconds: float) -> None:
        self._slots = slots
        self._auth = auth
        self._recheck_seconds = recheck_seconds
        self._open: set[OpenStream] = set()
        self._runner: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()

    @property
    def open_count(self) -> int:
        return len(self._open)

    async def open(
        self,
        principal: Principal,
        credential: Credential,
        sub: Subscription,
        permission: Permission = Permission.TASKS_READ,
    ) -> OpenStream:
        """Take a slot for a stream of ``principal``; StreamLimitReached when it has none left.

        The stream is ended when its credential no longer has ``permission``.
        """
        slot = await self._slots.acquire(principal)
        stream = OpenStream(principal, credential, sub, slot, permission)
        self._open.add(stream)
        self._arm_expiry(stream)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="aia-stream-guard")
        return stream

    async def close(self, stream: OpenStream) -> None:
        """Give the stream's slot back (it lapses by itself if Redis cannot be told)."""
        if stream not in self._open:
            return
        self._open.discard(stream)
        if stream.timer is not None:
            stream.timer.cancel()
        try:
            await self._slots.release(stream.slot)
        except redis.exceptions.RedisError as exc:
            log.warning("could not release a stream slot (it lapses by itself): %s", exc)

    def revoked(self, message: str) -> None:
        """A credential was revoked (``key:<hash>``, ``user:<id>``, ``all``): check again now."""
        kind, _, ident = message.partition(":")
        if kind == "key":
            targets = [s for s in self._open if s.key_hash == ident]
        else:
            # A user's change may also reach keys (whose role follows their creator's).
            targets = list(self._open)
        if targets:
            # "all" comes after the invalidation channel reconnects: nothing in
            # particular was revoked, so a database outage then ends no stream.
            self._spawn(self._recheck(targets, strict=kind != "all"))

    async def stop(self) -> None:
        """At shutdown: stop checking, and give back every slot still held."""
        for task in [self._runner, *self._checks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        for stream in list(self._open):
            await self.close(stream)

    # -- checks -------------------------------------------------------------------

    def _spawn(self, check: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(check)
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    def _arm_expiry(self, stream: OpenStream) -> None:
        if stream.key_hash is not None or not stream.credential.secret:
            return
        try:
            expires_at = self._auth.codec.verify(stream.credential.secret).expires_at
        except InvalidTokenError:
            expires_at = time.time()
        delay = max(0.0, expires_at - time.time()) + _EXPIRY_MARGIN_SECONDS
        stream.timer = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self._recheck([stream], strict=True))
        )

    async def _recheck(self, streams: list[OpenStream], *, strict: bool) -> None:
        """Authenticate each credential again; end the streams it no longer opens.

        ``strict``: the check was asked for by a revocation or an expiry, so a
        stream whose credential cannot be checked (database down) is ended too.
        """
        by_credential: dict[Credential, list[OpenStream]] = {}
        for stream in streams:
            if stream in self._open and stream.ended is None:
                by_credential.setdefault(stream.credential, []).append(stream)
        for credential, group in by_credential.items():
            try:
                principal = await self._auth.authenticate(
                    credential.authorization, credential.api_key
                )
            except Unauthenticated as exc:
                for stream in group:
                    self._end(stream, Problem(401, "unauthenticated", "Unauthenticated", str(exc)))
                continue
            except DATABASE_DOWN:
                if strict:
                    detail = (
                        "this stream's credentials were revoked or changed and cannot be "
                        "checked again right now; reconnect shortly"
                    )
                    for stream in group:
                        self._end(
                            stream,
                            Problem(503, "service-unavailable", "Service unavailable", detail),
                        )
                continue
            except Exception:
                log.exception("could not check a stream's credentials again")
                continue
            for stream in group:
                self._apply(stream, principal)

    def _apply(self, stream: OpenStream, principal: Principal) -> None:
        if (principal.kind, principal.id, principal.tenant) != (
            stream.principal.kind,
            stream.principal.id,
            stream.principal.tenant,
        ):
            self._end(
                stream,
                Problem(401, "unauthenticated", "Unauthenticated", "the credentials changed hands"),
            )
        elif not principal.can(stream.permission):
            detail = (
                f"the {principal.role} role no longer has the {stream.permission} "
                "permission this stream needs"
            )
            self._end(stream, Problem(403, "forbidden", "Forbidden", detail))
        else:
            stream.principal = principal
            if (
                stream.timer is not None
                and stream.timer.when() <= asyncio.get_running_loop().time()
            ):
                self._arm_expiry(stream)

    def _end(self, stream: OpenStream, problem: Problem) -> None:
        stream.ended = problem
        stream.sub.drop(problem.detail)

    async def _run(self) -> None:
        """Renew this process's slots, and check every stream again now and then."""
        tick = min(self._slots.lease_seconds / 3, self._recheck_seconds)
        next_check = time.monotonic() + self._recheck_seconds
        while self._open:
            await asyncio.sleep(tick)
            try:
                await self._slots.renew([s.slot for s in self._open])
            except redis.exceptions.RedisError as exc:
                log.warning("could not renew stream slots: %s", exc)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self._recheck_seconds
                await self._recheck(list(self._open), strict=False)
