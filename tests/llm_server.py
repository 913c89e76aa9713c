"""A small server speaking the OpenAI-compatible chat-completions API, for tests.

It answers deterministically from the prompt: the reply's content is the
first line of the last user message, so a test knows what a model "said".
It can be told to fail (``fail``: a status, so many times, with a
Retry-After) or to stall (``stall``: answer late) for the next requests, and
it keeps every request it got. Runs in a thread of the test process on a free
port (``running()``), or alone: ``python -m tests.llm_server --port 8099``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LLMServer", "running"]


@dataclass
class _Trouble:
    status: int = 0
    retry_after: str | None = None
    stall_seconds: float = 0.0


@dataclass
class LLMServer:
    """The server's behaviour and what it saw; ``base_url`` ends in ``/v1``."""

    api_key: str = ""
    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    _trouble: deque[_Trouble] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (an OpenAI-style error body)."""
        with self._lock:
            self._trouble.extend(_Trouble(status, retry_after) for _ in range(times))

    def stall(self, seconds: float, times: int = 1) -> None:
        """Wait ``seconds`` before answering each of the next ``times`` requests."""
        with self._lock:
            self._trouble.extend(_Trouble(stall_seconds=seconds) for _ in range(times))

    def _next_trouble(self) -> _Trouble | None:
        with self._lock:
            return self._trouble.popleft() if self._trouble else None


def _answer(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    text = str(users[-1].get("content", "")) if users else ""
    return text.splitlines()[0] if text else ""


def _handler(server: LLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows what the tests assert

        def _send(self, status: int, payload: dict[str, Any], headers: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def _error(self, status: int, message: str, headers: dict | None = None) -> None:
            self._send(status, {"error": {"message": message, "code": status}}, headers)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._error(400, "the body is not JSON")
                return
            server.requests.append(
                {"path": self.path, "headers": dict(self.headers.items()), "body": body}
            )
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._error(404, f"no route {self.path}")
                return
            if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                self._error(401, "Incorrect API key provided")
                return
            trouble = server._next_trouble()
            if trouble is not None and trouble.stall_seconds:
                time.sleep(trouble.stall_seconds)
            elif trouble is not None:
                extra = {"Retry-After": trouble.retry_after} if trouble.retry_after else None
                self._error(trouble.status, f"told to fail with {trouble.status}", extra)
                return
            if not body.get("model") or not isinstance(body.get("messages"), list):
                self._error(400, "model and messages are required")
                return
            content = _answer(body)
            self._send(
                200,
                {
                    "id": f"chatcmpl-{len(server.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": sum(
                            len(str(m.get("content", "")).split()) for m in body["messages"]
                        ),
                        "completion_tokens": len(content.split()),
                    },
                },
            )

    return Handler


@contextlib.contextmanager
def running(api_key: str = "", host: str = "127.0.0.1", port: int = 0) -> Iterator[LLMServer]:
    """A server on a free port (or ``port``) in a thread, shut down on exit."""
    server = LLMServer(api_key=api_key)
    httpd = ThreadingHTTPServer((host, port), _handler(server))
    httpd.daemon_threads = True
    server.base_url = f"http://{host}:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, name="llm-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="")
    args = parser.parse_args()
    with running(args.api_key, args.host, args.port) as server:
        print(server.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
