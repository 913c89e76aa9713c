"""Fan-out: N concurrent SSE subscribers (default 10,000) on one API process, one task each.

1. Start one API process (open-file limit raised first; it inherits it).
2. Submit N ``diagnostics.sleep`` (seconds 0) tasks while no worker runs.
3. Open N SSE streams, one per task, from several client processes (asyncio,
   raw sockets); a stream counts as subscribed once its ``queued`` event arrived.
4. With every stream open: read the API's RSS, its Redis connections, and
   Redis's view (``CLIENT LIST``: clients of this DB with ``sub>0``; ``PUBSUB NUMSUB``).
5. Start 2 workers (prefork ``-c 2`` each) and wait until every stream has
   seen its terminal event, or the deadline passes.
6. Count who got ``succeeded`` and what happened to the others; report the
   API's peak RSS, sampled every 0.1 s throughout.

    .venv/bin/python bench/fanout.py [--subscribers 10000] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil
from _harness import (
    DEFAULT_REDIS_DB,
    PYTHON,
    REDIS_PORT,
    Stack,
    auth_header,
    machine,
    percentile,
    raise_nofile,
    submit_many,
)

GOAL_RSS_MB = 500.0
TERMINAL_MARKS = {
    b"event: succeeded\n": "succeeded",
    b"event: failed\n": "failed",
    b"event: cancelled\n": "cancelled",
    b"event: error\n": "error_event",
}


# -- client process ------------------------------------------------------------------


async def client_main(ns: argparse.Namespace, ids: list[str]) -> None:
    gate = asyncio.Semaphore(ns.connect_concurrency)
    outcome: Counter[str] = Counter()
    subscribed = 0
    go_at = 0.0
    done_after: list[float] = []
    writers: list[asyncio.StreamWriter] = []
    all_settled = asyncio.Event()

    def settle() -> None:
        if subscribed + sum(outcome.values()) >= len(ids):
            all_settled.set()

    async def stream(task_id: str) -> None:
        try:
            await open_and_follow(task_id)
        finally:
            settle()

    async def open_stream(task_id: str) -> tuple[asyncio.StreamReader, bytes] | None:
        """Connect, send the request, read until the ``queued`` event; None on failure."""
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", ns.port)
        except OSError as exc:
            outcome[f"connect_error:{type(exc).__name__}"] += 1
            return None
        writers.append(writer)
        writer.write(
            f"GET /v1/tasks/{task_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{ns.port}\r\n"
            f"Accept: text/event-stream\r\n{auth_header()}\r\n".encode()
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError) as exc:
            outcome[f"no_response:{type(exc).__name__}"] += 1
            return None
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            outcome[f"http_{status}"] += 1
            return None
        buf = b""
        while b"event: queued\n" not in buf:
            data = await _read(reader)
            if not data:
                outcome["eof_before_queued"] += 1
                return None
            buf += data
        return reader, buf

    async def open_and_follow(task_id: str) -> None:
        nonlocal subscribed
        async with gate:
            try:
                opened = await asyncio.wait_for(open_stream(task_id), ns.stream_open_timeout)
            except TimeoutError:
                outcome["open_timeout"] += 1
                return
            if opened is None:
                return
            reader, buf = opened
            subscribed += 1
            settle()
        while True:
            for mark, name in TERMINAL_MARKS.items():
                if mark in buf:
                    outcome[name] += 1
                    if go_at:
                        done_after.append(time.monotonic() - go_at)
                    return
            data = await _read(reader)
            if not data:
                outcome["eof_before_terminal"] += 1
                return
            buf = buf[-64:] + data

    async def report_progress() -> None:
        while True:
            await asyncio.sleep(5)
            _emit({"phase": "progress", "subscribed": subscribed, "outcome": outcome})

    started = time.monotonic()
    tasks = [asyncio.create_task(stream(task_id)) for task_id in ids]
    # Ready once every stream is subscribed or has failed to.
    progress = asyncio.create_task(report_progress())
    await all_settled.wait()
    progress.cancel()
    _emit(
        {
            "phase": "ready",
            "subscribed": subscribed,
            "seconds": time.monotonic() - started,
            "outcome": outcome,
        }
    )
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    go_at = time.monotonic()
    wait = float(line.split()[1])
    _, pending = await asyncio.wait(tasks, timeout=wait)
    for task in pending:
        task.cancel()
    outcome["timed_out"] += len(pending)
    for writer in writers:
        with contextlib.suppress(Exception):
            writer.close()
    _emit(
        {
            "phase": "done",
            "subscribed": subscribed,
            "outcome": outcome,
            "done_after": done_after,
        }
    )


async def _read(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.read(65536)
    except OSError:
        return b""


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# -- the parent ------------------------------------------------------------------------


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.last = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            with contextlib.suppress(psutil.Error):
                self.last = self.proc.memory_info().rss
                self.peak = max(self.peak, self.last)
            self._halt.wait(0.1)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _summarise(counts: Iterable[int]) -> str:
    """Channel counts per connection, largest first: ``9874, 68, 2 x5, 1 x35``."""
    tally = Counter(counts)
    return ", ".join(
        str(n) if k == 1 else f"{n} x{k}" for n, k in sorted(tally.items(), reverse=True)
    )


def mb(n: float) -> float:
    return n / 1024 / 1024


def pubsub_view(stack: Stack, api_pid: int, sample: list[str]) -> dict[str, Any]:
    clients = stack.redis.client_list()
    subscribers = [
        c
        for c in clients
        if int(c.get("db", -1)) == stack.redis_db
        and (int(c.get("sub", 0)) > 0 or int(c.get("psub", 0)) > 0)
    ]
    numsub = stack.redis.pubsub_numsub(*[f"aia:task:{t}:live" for t in sample])
    api_redis = [
        c
        for c in psutil.Process(api_pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == REDIS_PORT
    ]
    return {
        "pubsub_clients": len(subscribers),
        "their_sub_counts": _summarise(int(c.get("sub", 0)) for c in subscribers),
        "numsub_sample": sorted({int(n) for _, n in numsub}),
        "api_redis_connections": len(api_redis),
    }


async def parent_main(ns: argparse.Namespace) -> int:
    limit = raise_nofile()
    print(f"fan-out: {machine()}; Redis DB {ns.redis_db}; open-file limit {limit}")
    need = ns.subscribers + 1000
    if limit < need:
        print(f"  the open-file limit {limit} is below the {need} this needs; expect failures")
    with Stack(ns.redis_db, keep_logs=ns.keep_logs) as stack:
        stack.start_recorder()
        api, base = stack.start_api()
        port = int(base.rsplit(":", 1)[1])
        api_limit = psutil.Process(api.pid).rlimit(psutil.RLIMIT_NOFILE)
        sampler = RssSampler(api.pid)
        sampler.start()
        await asyncio.sleep(0.3)
        rss_idle = sampler.last
        print(f"  API pid {api.pid}, open-file limit {api_limit[0]}, RSS {mb(rss_idle):.0f} MB")

        t = time.perf_counter()
        ids = await submit_many(base, ns.subscribers, concurrency=32)
        print(f"  submitted {len(ids)} tasks in {time.perf_counter() - t:.1f} s (no worker yet)")
        rss_submitted = sampler.last

        ids_file = Path(tempfile.mkstemp(prefix="aia-fanout-ids-", suffix=".json")[1])
        await asyncio.to_thread(ids_file.write_text, json.dumps(ids))
        per = -(-len(ids) // ns.clients)
        clients = []
        t = time.perf_counter()
        for i in range(ns.clients):
            argv = [PYTHON, __file__, "--client", "--ids", str(ids_file), "--port", str(port)]
            argv += ["--start", str(i * per), "--stop", str(min(len(ids), (i + 1) * per))]
            argv += ["--connect-concurrency", str(ns.connect_concurrency)]
            clients.append(
                await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
                )
            )
        ready = []
        workers = []
        try:
            for c in clients:
                assert c.stdout is not None
                while True:
                    line = await asyncio.wait_for(c.stdout.readline(), ns.open_timeout)
                    if not line:
                        raise RuntimeError("a client process exited before it was ready")
                    message = json.loads(line)
                    if message["phase"] == "ready":
                        break
                    print(
                        f"    client {len(ready)}: {message['subscribed']} subscribed so far, "
                        f"{dict(message['outcome'])}, API RSS {mb(sampler.last):.0f} MB",
                        flush=True,
                    )
                ready.append(message)
            subscribed = sum(r["subscribed"] for r in ready)
            open_failures: Counter[str] = Counter()
            for r in ready:
                open_failures.update(r["outcome"])
            print(
                f"  {subscribed} of {len(ids)} streams subscribed in "
                f"{time.perf_counter() - t:.1f} s; failures while opening: "
                f"{dict(open_failures) or 'none'}"
            )
            await asyncio.sleep(0.5)
            rss_subscribed = sampler.last
            view = pubsub_view(stack, api.pid, ids[:: max(1, len(ids) // 20)])
            channels = len(stack.redis.pubsub_channels("aia:task:*:live"))
            print(
                f"  with all open: API RSS {mb(rss_subscribed):.0f} MB; Redis: "
                f"{view['pubsub_clients']} pub/sub client(s) on DB {ns.redis_db} holding "
                f"{view['their_sub_counts']} channels, {channels} aia live channels, "
                f"PUBSUB NUMSUB of a sample {view['numsub_sample']}; "
                f"API's Redis connections: {view['api_redis_connections']}"
            )

            t = time.perf_counter()
            workers += [stack.start_worker(f"fan{i}", concurrency=2) for i in (1, 2)]
            for c in clients:
                assert c.stdin is not None
                c.stdin.write(f"go {ns.wait}\n".encode())
                await c.stdin.drain()
            finals = []
            for c in clients:
                assert c.stdout is not None
                line = await asyncio.wait_for(c.stdout.readline(), ns.wait + 30)
                finals.append(json.loads(line))
            drain = time.perf_counter() - t
            pipe = stack.redis.pipeline(transaction=False)
            for task_id in ids:
                pipe.hget(f"aia:task:{task_id}", "status")
            statuses = Counter(pipe.execute())
            busy_view = pubsub_view(stack, api.pid, ids[:5])
        finally:
            for c in clients:
                with contextlib.suppress(ProcessLookupError):
                    c.kill()
                await c.wait()
            await asyncio.to_thread(ids_file.unlink, missing_ok=True)
        sampler.stop()
        for w in workers:
            stack.stop(w)

    outcome: Counter[str] = Counter()
    done_after: list[float] = []
    for f in finals:
        outcome.update(f["outcome"])
        done_after.extend(f["done_after"])
    done_after.sort()
    got = outcome["succeeded"]
    print()
    print(f"subscribers:                {len(ids)}")
    print(f"subscribed (got queued):    {subscribed}")
    print(f"got terminal succeeded:     {got}")
    others = {k: v for k, v in outcome.items() if k != "succeeded" and v}
    print(f"other outcomes:             {others or 'none'}")
    print(f"task statuses in Redis:     {dict(statuses)}")
    if done_after:
        print(
            f"succeeded seen after go:    p50 {percentile(done_after, 50):.1f} s, "
            f"last {done_after[-1]:.1f} s (drain incl. worker start {drain:.1f} s)"
        )
    print(
        f"API RSS:                    idle {mb(rss_idle):.0f} MB, after submit "
        f"{mb(rss_submitted):.0f} MB, all subscribed {mb(rss_subscribed):.0f} MB, "
        f"peak {mb(sampler.peak):.0f} MB"
    )
    print(
        f"pub/sub clients on DB:      {view['pubsub_clients']} while only the API ran "
        f"(sub counts {view['their_sub_counts']}); {busy_view['pubsub_clients']} at the end "
        f"with 2 workers up (Celery's own pidbox/event connections)"
    )
    ok = got == len(ids) and sampler.peak < GOAL_RSS_MB * 1024 * 1024
    print()
    print(
        f"goal: peak RSS < {GOAL_RSS_MB:g} MB and every subscriber gets its terminal event -> "
        f"{mb(sampler.peak):.0f} MB, {got}/{len(ids)}: {'met' if ok else 'NOT met'}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument(
        "--connect-concurrency",
        type=int,
        default=100,
        help="streams each client process opens at once",
    )
    parser.add_argument(
        "--stream-open-timeout",
        type=float,
        default=30.0,
        help="seconds one stream may take from connect to its queued event",
    )
    parser.add_argument("--open-timeout", type=float, default=120.0)
    parser.add_argument("--wait", type=float, default=90.0, help="seconds for terminal events")
    parser.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.client:
        raise_nofile()
        ids = json.loads(Path(ns.ids).read_text())[ns.start : ns.stop]
        asyncio.run(client_main(ns, ids))
        return 0
    return asyncio.run(parent_main(ns))


if __name__ == "__main__":
    sys.exit(main())
