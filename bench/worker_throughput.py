"""Worker throughput for no-op tasks: an AIA worker against bare Celery with the same settings.

(a) AIA: N ``diagnostics.sleep`` (seconds 0, steps 1) tasks are submitted through
    the API (which is then stopped), then ``aia recorder`` and one AIA worker
    start: prefork, ``-c 2``, the default queue, ``celeryconfig``. Every task
    pays for its events (started, progress, succeeded), its record, Celery's
    own monitoring events and the recorder's database writes.
(b) bare: N no-op tasks of ``bench/bare_celery_app.py`` (the same Celery
    settings, none of AIA's work) are queued with ``send_task``, then one worker
    of that app starts, same pool and concurrency.

Both runs are timed the same way, from outside: from the moment the first
message leaves the queue until the queue and kombu's unacked set are both
empty (every task acknowledged, which late acks do only after the body ran),
polled every 10 ms. AIA's run is then checked: every task succeeded, once.

    .venv/bin/python bench/worker_throughput.py [--tasks 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from _harness import DEFAULT_REDIS_DB, Stack, machine, submit_many

GOAL_RATIO = 0.7
POLL_SECONDS = 0.01


@dataclass(frozen=True)
class Run:
    name: str
    tasks: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else 0.0


def time_drain(client: redis.Redis, total: int, timeout: float, alive: Callable[[], bool]) -> float:
    """Seconds from the first message leaving ``default`` to all of them acknowledged."""
    deadline = time.monotonic() + timeout
    started: float | None = None
    while True:
        now = time.perf_counter()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the queue did not drain within {timeout} s")
        if not alive():
            raise RuntimeError("the worker exited before finishing")
        pipe = client.pipeline(transaction=False)
        pipe.llen("default")
        pipe.hlen("unacked")
        queued, unacked = pipe.execute()
        if started is None and queued < total:
            started = now
        if started is not None and queued == 0 and unacked == 0:
            return now - started
        time.sleep(POLL_SECONDS)


def run_aia(stack: Stack, count: int, timeout: float) -> Run:
    stack.redis.flushdb()
    api, base = stack.start_api()
    started = time.perf_counter()
    ids = asyncio.run(submit_many(base, count, concurrency=32))
    print(f"  aia: submitted {count} over HTTP in {time.perf_counter() - started:.1f} s")
    stack.stop(api)
    queued = stack.redis.llen("default")
    if queued != count:
        raise RuntimeError(f"expected {count} queued messages, found {queued}")
    recorder = stack.start_recorder()
    worker = stack.start_worker("bench", concurrency=2)
    try:
        seconds = time_drain(stack.redis, count, timeout, worker.alive)
        pipe = stack.redis.pipeline(transaction=False)
        for task_id in ids:
            pipe.hmget(f"aia:task:{task_id}", "status", "attempts")
        rows = pipe.execute()
    finally:
        stack.stop(recorder)
        stack.stop(worker)
    bad = [row for row in rows if row != ["succeeded", "1"]]
    print(f"  aia: {count - len(bad)} of {count} succeeded on their first attempt")
    if bad:
        raise RuntimeError(f"{len(bad)} tasks did not succeed exactly once: {bad[:3]}")
    return Run("aia", count, seconds)


def run_bare(stack: Stack, count: int, timeout: float) -> Run:
    stack.redis.flushdb()
    os.environ["BENCH_REDIS_URL"] = stack.redis_url
    from bare_celery_app import app

    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            app.send_task("bench.noop", producer=producer)
    print(f"  bare: queued {count} with send_task in {time.perf_counter() - started:.1f} s")
    worker = stack.start_worker("bare", concurrency=2, app="bare_celery_app")
    try:
        seconds = time_drain(stack.redis, count, timeout, worker.alive)
    finally:
        stack.stop(worker)
    return Run("bare", count, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating bare/AIA runs; medians are compared"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per run, seconds")
    parser.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB)
    parser.add_argument("--keep-logs", action="store_true")
    ns = parser.parse_args()

    print(f"worker throughput: {machine()}; Redis DB {ns.redis_db}")
    print(
        f"{ns.tasks} no-op tasks pre-queued, one prefork worker -c 2 on the default queue; "
        f"{ns.rounds} alternating rounds (this machine's speed drifts, so runs interleave)"
    )
    runs: dict[str, list[Run]] = {"aia": [], "bare": []}
    with Stack(ns.redis_db, keep_logs=ns.keep_logs) as stack:
        for _ in range(ns.rounds):
            runs["bare"].append(run_bare(stack, ns.tasks, ns.timeout))
            runs["aia"].append(run_aia(stack, ns.tasks, ns.timeout))

    print()
    print(f"{'run':<8}{'tasks/s per round':>40}{'median':>10}")
    medians: dict[str, float] = {}
    for name, results in runs.items():
        rates = [r.rate for r in results]
        medians[name] = statistics.median(rates)
        listed = ", ".join(f"{rate:.0f}" for rate in rates)
        print(f"{name:<8}{listed:>40}{medians[name]:>10.0f}")
    ratio = medians["aia"] / medians["bare"] if medians["bare"] else 0.0
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    print()
    print(
        f"goal: aia >= {GOAL_RATIO} x bare Celery -> {ratio:.2f} x "
        f"(medians {medians['aia']:.0f} vs {medians['bare']:.0f} tasks/s): {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
