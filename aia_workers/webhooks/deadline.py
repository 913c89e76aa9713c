"""An overall deadline for one delivery attempt, held on every network wait.

httpx's timeouts bound each wait, not the attempt: a receiver that sends its
status line, headers or body a byte at a time, each byte inside the read
timeout, would hold a worker thread for as long as it liked, and a threads
pool enforces no Celery time limit to end it. The network backend here gives
every wait (connect, TLS handshake, each send and each receive) only the time
left before the deadline of the attempt running on the calling thread, so the
attempt ends by then whatever the receiver does. The sync client does all its
I/O on the calling thread, which is how a pooled connection shared by many
threads finds the deadline of the attempt now using it.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from functools import partial
from typing import Any, TypeVar

import httpcore

__all__ = ["Deadline", "DeadlineBackend", "within"]

_T = TypeVar("_T")
_Timeout = type[httpcore.TimeoutException]


class Deadline:
    """A point ``seconds`` from now on the monotonic clock; ``reached`` once it cut a wait short."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"a deadline must be in the future, not {seconds} s from now")
        self.seconds = seconds
        self._at = time.monotonic() + seconds
        self.reached = False

    def remaining(self) -> float:
        """Seconds left; zero or less once it has passed."""
        return self._at - time.monotonic()

    def wait(self, timeout: float | None, kind: _Timeout) -> tuple[float, bool]:
        """The wait to allow instead of ``timeout``, and whether the deadline shortened it.

        Raises ``kind`` (marking the deadline reached) if no time is left.
        """
        left = self.remaining()
        if left <= 0:
            self.reached = True
            raise kind(f"the delivery deadline of {self.seconds:g} s has passed")
        if timeout is None or left < timeout:
            return left, True
        return timeout, False


_current: ContextVar[Deadline | None] = ContextVar("aia_webhook_deadline", default=None)


@contextlib.contextmanager
def within(deadline: Deadline) -> Iterator[Deadline]:
    """Hold every network wait of this thread (through a DeadlineBackend) to ``deadline``."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def _bounded(op: Callable[[float | None], _T], timeout: float | None, kind: _Timeout) -> _T:
    deadline = _current.get()
    if deadline is None:
        return op(timeout)
    wait, shortened = deadline.wait(timeout, kind)
    try:
        return op(wait)
    except httpcore.TimeoutException:
        if shortened:
            deadline.reached = True
        raise


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # One receive per call, and it returns as soon as any bytes arrive: the
        # caller's next call asks the clock again.
        return _bounded(lambda t: self._inner.read(max_bytes, t), timeout, httpcore.ReadTimeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        sock = self._inner.get_extra_info("socket")
        if _current.get() is None or sock is None:
            self._inner.write(buffer, timeout)
            return
        # The inner stream loops over sends with one timeout for them all, so
        # a receiver taking a little before each ran out could stretch the
        # whole; here each send gets only what is left.
        view = memoryview(buffer)
        while view:
            sent = _bounded(partial(_send, sock, view), timeout, httpcore.WriteTimeout)
            view = view[sent:]

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        # The ssl module holds the whole handshake to the socket's timeout.
        inner = _bounded(
            lambda t: self._inner.start_tls(ssl_context, server_hostname, t),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _Stream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _send(sock: Any, data: memoryview, timeout: float | None) -> int:
    try:
        sock.settimeout(timeout)
        return int(sock.send(data))
    except TimeoutError as exc:
        raise httpcore.WriteTimeout(str(exc) or "timed out") from exc
    except OSError as exc:
        raise httpcore.WriteError(str(exc)) from exc


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync backend with every wait held to the calling thread's deadline (if any)."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = _bounded(
            lambda t: self._inner.connect_tcp(host, port, t, local_address, socket_options),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _Stream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = _bounded(
            lambda t: self._inner.connect_unix_socket(path, t, socket_options),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _Stream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)
