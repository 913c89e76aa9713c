"""A real HTTP receiver for webhook tests: records requests and answers as programmed."""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["ReceivedRequest", "Receiver", "ReplySpec", "closed_port_url"]

# A hanging handler gives up on its own after this long, should close() never come.
_HANG_LIMIT_SECONDS = 60.0


@dataclass(frozen=True)
class ReplySpec:
    """How the receiver answers one request.

    ``hang`` never answers until close(); ``trickle_seconds`` pauses before
    each byte of the body, and ``trickle_head_seconds`` before each byte of
    the status line and headers, for clients that must give up on a reply
    that keeps coming, each byte well inside any read timeout.
    """

    status: int = 200
    body: bytes = b"ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    hang: bool = False
    trickle_seconds: float = 0.0
    trickle_head_seconds: float = 0.0


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as received; header names lower-case, ``received_at`` from time.time()."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Joining handler threads on close would wait out hanging ones.
    block_on_close = False
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that stop reading (body limits, timeouts) reset the connection; expected.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        receiver = self.server.receiver
        spec = receiver._record(
            ReceivedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                received_at=time.time(),
            )
        )
        if spec.hang:
            receiver._closing.wait(_HANG_LIMIT_SECONDS)
            self.close_connection = True
            return
        if spec.delay_seconds and receiver._closing.wait(spec.delay_seconds):
            return
        names = {k.lower() for k in spec.headers}
        headers = dict(spec.headers)
        if "content-length" not in names:
            headers["Content-Length"] = str(len(spec.body))
        try:
            if spec.trickle_head_seconds:
                if not self._trickle(self._head(spec.status, headers), spec.trickle_head_seconds):
                    return
            else:
                self.send_response(spec.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
            if not spec.trickle_seconds:
                self.wfile.write(spec.body)
            else:
                self._trickle(spec.body, spec.trickle_seconds)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _head(self, status: int, headers: Mapping[str, str]) -> bytes:
        reason = self.responses.get(status, ("",))[0]
        lines = [f"{self.protocol_version} {status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _trickle(self, data: bytes, pause_seconds: float) -> bool:
        """Send ``data`` a byte at a time; False if close() stopped it first."""
        for i in range(len(data)):
            if self.server.receiver._closing.wait(pause_seconds):
                return False
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
        return True

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _handle


class Receiver:
    """An HTTP server on 127.0.0.1 and a free port, serving from a background thread."""

    def __init__(self, path: str = "/hook") -> None:
        self.path = path
        self.default = ReplySpec()
        self._lock = threading.Condition()
        self._requests: list[ReceivedRequest] = []
        self._queue: deque[ReplySpec] = deque()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The receiver's URL, e.g. http://127.0.0.1:PORT/hook."""
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def respond(self, *replies: ReplySpec) -> None:
        """Queue replies for the next requests, in order; then ``default`` applies."""
        with self._lock:
            self._queue.extend(replies)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until at least ``n`` requests arrived; AssertionError after ``timeout`` s."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._requests) >= n, timeout):
                raise AssertionError(
                    f"expected {n} webhook requests within {timeout} s, got {len(self._requests)}"
                )
            return list(self._requests)

    def _record(self, request: ReceivedRequest) -> ReplySpec:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()
            return self._queue.popleft() if self._queue else self.default

    def close(self) -> None:
        """Stop serving and release hanging handlers; safe to call twice."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def closed_port_url(path: str = "/hook") -> str:
    """A URL on 127.0.0.1 and a port nobody listens on (free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
