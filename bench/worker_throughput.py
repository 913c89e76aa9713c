"""Worker throughput for no-op tasks: an AIA worker against bare Celery with the same settings.

(a) AIA: N ``diagnostics.sleep`` (seconds 0, steps 1) tasks are submitted through
    the API (which is then stopped, so only the worker runs), then one AIA
    worker starts: prefork, ``-c 2``, the default queue, ``celeryconfig``.
(b) bare: N no-op tasks of ``bench/bare_celery_app.py`` (AIA's Celery settings,
    none of its events) are queued with ``send_task``, then one worker of that
    app starts, same pool and concurrency.

Each run ends when all N are done (AIA: the task hash says ``succeeded``;
bare: the result backend says ``SUCCESS``), polled with pipelined reads every
0.25 s. The rate is N over the span from the first task starting to the last
finishing (times recorded by the worker), so worker start-up is left out; the
wall time from spawning the worker is printed too.

    .venv/bin/python bench/worker_throughput.py [--tasks 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis
from _harness import DEFAULT_REDIS_DB, Stack, machine, submit_many

GOAL_RATIO = 0.7
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Run:
    name: str
    tasks: int
    span: float  # first start -> last finish, from the workers' timestamps
    wall: float  # worker spawned -> all seen done by the poller

    @property
    def rate(self) -> float:
        return self.tasks / self.span if self.span > 0 else 0.0


def wait_all_done(
    client: redis.Redis,
    ids: list[str],
    is_done: Callable[[redis.Redis, list[str]], list[bool]],
    timeout: float,
    proc_alive: Callable[[], bool],
) -> None:
    pending = list(ids)
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} of {len(ids)} tasks not done after {timeout} s")
        if not proc_alive():
            raise RuntimeError("the worker exited before finishing")
        time.sleep(POLL_SECONDS)
        flags = is_done(client, pending)
        pending = [task_id for task_id, done in zip(pending, flags, strict=True) if not done]


def aia_done(client: redis.Redis, ids: list[str]) -> list[bool]:
    pipe = client.pipeline(transaction=False)
    for task_id in ids:
        pipe.hget(f"aia:task:{task_id}", "status")
    return [status == "succeeded" for status in pipe.execute()]


def bare_done(client: redis.Redis, ids: list[str]) -> list[bool]:
    raw = client.mget([f"celery-task-meta-{task_id}" for task_id in ids])
    return [r is not None and json.loads(r)["status"] == "SUCCESS" for r in raw]


def run_aia(stack: Stack, count: int, timeout: float) -> Run:
    stack.redis.flushdb()
    api, base = stack.start_api()
    started = time.perf_counter()
    ids = asyncio.run(submit_many(base, count, concurrency=32))
    print(f"  aia: submitted {count} over HTTP in {time.perf_counter() - started:.1f} s")
    stack.stop(api)
    # The database updates count: the recorder writes every event while the worker runs.
    recorder = stack.start_recorder()
    queued = stack.redis.llen("default")
    wall = time.perf_counter()
    worker = stack.start_worker("bench", concurrency=2)
    try:
        wait_all_done(stack.redis, ids, aia_done, timeout, worker.alive)
        wall = time.perf_counter() - wall
        pipe = stack.redis.pipeline(transaction=False)
        for task_id in ids:
            pipe.hmget(f"aia:task:{task_id}", "started_at", "finished_at", "attempts")
        rows = pipe.execute()
    finally:
        stack.stop(recorder)
        stack.stop(worker)
    span = max(float(r[1]) for r in rows) - min(float(r[0]) for r in rows)
    retried = sum(1 for r in rows if r[2] != "1")
    print(f"  aia: {queued} messages queued; done; {retried} tasks ran more than once")
    return Run("aia", count, span, wall)


def run_bare(stack: Stack, count: int, timeout: float) -> Run:
    stack.redis.flushdb()
    os.environ["BENCH_REDIS_URL"] = stack.redis_url
    from bare_celery_app import app

    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        ids = [app.send_task("bench.noop", producer=producer).id for _ in range(count)]
    print(f"  bare: queued {count} with send_task in {time.perf_counter() - started:.1f} s")
    wall = time.perf_counter()
    worker = stack.start_worker("bare", concurrency=2, app="bare_celery_app")
    try:
        wait_all_done(stack.redis, ids, bare_done, timeout, worker.alive)
        wall = time.perf_counter() - wall
        metas = [json.loads(r) for r in stack.redis.mget([f"celery-task-meta-{i}" for i in ids])]
    finally:
        stack.stop(worker)
    first = min(float(m["result"]) for m in metas)
    last = max(datetime.fromisoformat(m["date_done"]).timestamp() for m in metas)
    return Run("bare", count, last - first, wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=90.0, help="per run, seconds")
    parser.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB)
    parser.add_argument("--keep-logs", action="store_true")
    ns = parser.parse_args()

    print(f"worker throughput: {machine()}; Redis DB {ns.redis_db}")
    print(f"{ns.tasks} no-op tasks pre-queued, one prefork worker -c 2 on the default queue")
    with Stack(ns.redis_db, keep_logs=ns.keep_logs) as stack:
        aia = run_aia(stack, ns.tasks, ns.timeout)
        bare = run_bare(stack, ns.tasks, ns.timeout)

    print()
    print(f"{'run':<8}{'tasks':>7}{'span s':>9}{'tasks/s':>10}{'wall s':>9}{'wall tasks/s':>14}")
    for r in (aia, bare):
        print(
            f"{r.name:<8}{r.tasks:>7}{r.span:>9.2f}{r.rate:>10.0f}{r.wall:>9.2f}"
            f"{r.tasks / r.wall:>14.0f}"
        )
    ratio = aia.rate / bare.rate if bare.rate else 0.0
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    print()
    print(
        f"goal: aia >= {GOAL_RATIO} x bare Celery -> {ratio:.2f} x "
        f"({aia.rate:.0f} vs {bare.rate:.0f} tasks/s): {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
