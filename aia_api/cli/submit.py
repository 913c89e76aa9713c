"""``aia submit``: submit over HTTP and, with ``--watch``, follow the task to its end."""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx
from httpx_sse import connect_sse

__all__ = ["submit"]

_BAR = 30


def submit(
    *,
    api: str,
    api_key: str | None,
    task_type: str,
    data: str,
    watch: bool,
    countdown: float | None = None,
    priority: int | None = None,
    idempotency_key: str | None = None,
) -> int:
    """Exit status: 0 submitted (or succeeded when watching), 1 failed or cancelled, 2 refused."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        print(f"--data is not valid JSON: {exc}", file=sys.stderr)
        return 2
    body: dict[str, Any] = {"type": task_type, "payload": payload}
    if countdown is not None:
        body["countdown"] = countdown
    if priority is not None:
        body["priority"] = priority
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=api, timeout=httpx.Timeout(10.0, read=None), headers=auth) as client:
        try:
            response = client.post("/v1/tasks", json=body, headers=headers)
        except httpx.HTTPError as exc:
            print(f"cannot reach the AIA API at {api}: {exc}", file=sys.stderr)
            return 2
        if response.status_code != 202:
            _print_problem(response)
            return 2
        task = response.json()
        print(f"task {task['id']} queued on {task['queue']}", file=sys.stderr)
        if not watch:
            print(json.dumps(task, indent=2))
            return 0
        return _watch(client, task)


def _watch(client: httpx.Client, task: dict[str, Any]) -> int:
    last = 0
    while True:
        headers = {"Last-Event-ID": str(last)} if last else {}
        try:
            with connect_sse(client, "GET", task["links"]["events"], headers=headers) as source:
                for sse in source.iter_sse():
                    if sse.event == "error":
                        # The server dropped the stream; resume from the last event.
                        break
                    if not sse.data:
                        continue
                    event = json.loads(sse.data)
                    last = event["seq"]
                    done = _show(event)
                    if done is not None:
                        return done
        except httpx.HTTPError as exc:
            print(f"\nlost the event stream ({exc}); resuming", file=sys.stderr)


def _show(event: dict[str, Any]) -> int | None:
    name = event["event"]
    data = event.get("data") or {}
    if name == "progress" and "current" not in data:
        # A note on a task that has not started (an agent run waiting for a slot).
        print(data.get("message") or "", file=sys.stderr)
        return None
    if name == "progress":
        current, total = data.get("current", 0), data.get("total") or 1
        filled = int(_BAR * current / total)
        message = data.get("message") or ""
        bar = "#" * filled + "-" * (_BAR - filled)
        print(f"\r[{bar}] {current}/{total} {message}"[:100].ljust(100), end="", file=sys.stderr)
        return None
    if name == "queued":
        return None
    if name in ("started", "retrying"):
        print(f"\n{name} (attempt {data.get('attempt', data.get('retry', 1))})", file=sys.stderr)
        return None
    print(file=sys.stderr)
    if name == "succeeded":
        print(json.dumps(data.get("result"), indent=2))
        return 0
    if name == "failed":
        error = data.get("error") or {}
        print(f"failed: {error.get('message', error)}", file=sys.stderr)
        return 1
    print(f"{name}: {data.get('reason', '')}", file=sys.stderr)
    return 1


def _print_problem(response: httpx.Response) -> None:
    try:
        problem = response.json()
    except ValueError:
        print(f"HTTP {response.status_code}: {response.text[:500]}", file=sys.stderr)
        return
    print(f"HTTP {response.status_code}: {problem.get('detail', problem)}", file=sys.stderr)
    for error in problem.get("errors") or []:
        print(f"  {error.get('pointer')}: {error.get('message')}", file=sys.stderr)
