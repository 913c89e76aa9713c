"""Worker throughput for no-op tasks: AIA's worker against bare Celery, set as AIA and as shipped.

(a) AIA: N ``diagnostics.sleep`` (seconds 0, steps 1) tasks are submitted through
    the API (which is then stopped), then ``aia recorder`` and one AIA worker
    start on the default queue, with that queue's profile (pool, concurrency,
    prefetch: ``aia_workers/backbone/profiles.py``) and ``celeryconfig``. Every task
    pays for its events (started, progress, succeeded), its record, Celery's
    own monitoring events and the recorder's database writes.
(b) bare: N no-op tasks of ``bench/bare_celery_app.py`` (the same Celery
    settings, none of AIA's work) are queued with ``send_task``, then one worker
    of that app starts, with the same profile.
(c) defaults: N no-op tasks of ``bench/celery_defaults_app.py`` (Celery's
    defaults: only the broker and result backend set) are queued the same way,
    then ``celery -A celery_defaults_app worker`` starts with no pool,
    concurrency or prefetch option: prefork, one process per core, prefetch 4,
    early acks, no events, each result stored in the backend.

All runs are timed the same way, from outside: from the moment the first
message leaves the queue until the queue and kombu's unacked set are both
empty, polled every 10 ms. Late acks (a, b) come only after the body ran;
early acks (c) come before it, so (c) also waits for every task's result.
AIA's run is then checked: every task succeeded, once.

Over the same span, each run also measures the CPU seconds per task of each
process group (``psutil``): the worker's parent, its pool children, AIA's
recorder, and the Redis server when it is a private one (``BENCH_REDIS`` not
on port 6379: a shared server also serves other people's work). The goal is
judged on both: the median throughput, and the median total CPU per task
(AIA's no more than the defaults').

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

import psutil
import redis
from _harness import (
    CELERY,
    DEFAULT_REDIS_DB,
    REDIS_PORT,
    REPO,
    Proc,
    Stack,
    machine,
    submit_many,
)
from celery import Celery

# This checkout's worker profiles.
sys.path.insert(0, str(REPO))
from aia_workers.backbone.profiles import PROFILES
from aia_workers.backbone.states import Queue

GOAL_RATIO = 1.0
GOAL_REFERENCE = "defaults"
POLL_SECONDS = 0.01


GROUPS = ("parent", "pool", "recorder", "redis")
# The machine's shared Redis serves other work too: its CPU says nothing of ours.
SHARED_REDIS_PORT = 6379


@dataclass(frozen=True)
class Run:
    name: str
    tasks: int
    seconds: float
    cpu: dict[str, float]  # CPU seconds over the drain, per process group

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else 0.0

    def cpu_us(self, group: str) -> float | None:
        """CPU microseconds per task of ``group``; None when it was not measured."""
        spent = self.cpu.get(group)
        return None if spent is None else spent / self.tasks * 1e6

    @property
    def total_cpu_us(self) -> float:
        return sum(self.cpu.values()) / self.tasks * 1e6


class CpuMeter:
    """CPU seconds (user + system) each process group spends between ``start`` and ``stop``.

    ``parent`` is the worker's own process, ``pool`` every process below it
    (as they are at ``start``: prefork's children live as long as the drain).
    """

    def __init__(self, client: redis.Redis, worker: Proc, recorder: Proc | None = None) -> None:
        self._client = client
        self._worker = worker
        self._recorder = recorder
        self._procs: dict[str, list[psutil.Process]] = {}
        self._before: dict[str, float] = {}

    def start(self) -> None:
        parent = psutil.Process(self._worker.pid)
        self._procs = {"parent": [parent], "pool": parent.children(recursive=True)}
        if self._recorder is not None:
            recorder = psutil.Process(self._recorder.pid)
            self._procs["recorder"] = [recorder, *recorder.children(recursive=True)]
        self._before = self._sample()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        return {group: after[group] - self._before[group] for group in self._before}

    def _sample(self) -> dict[str, float]:
        sample = {group: sum(_cpu(p) for p in procs) for group, procs in self._procs.items()}
        if REDIS_PORT != SHARED_REDIS_PORT:
            info = self._client.info("cpu")
            sample["redis"] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return sample


def _cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def time_drain(
    client: redis.Redis,
    total: int,
    timeout: float,
    alive: Callable[[], bool],
    *,
    queue: str = "default",
    results: bool = False,
    meter: CpuMeter | None = None,
) -> tuple[float, dict[str, float]]:
    """Seconds from the first message leaving ``queue`` to all of them acknowledged.

    ``results``: also until every task's result is in the backend (early acks
    come before the body runs). ``meter`` measures the CPU over the same span.
    """
    deadline = time.monotonic() + timeout
    started: float | None = None
    while True:
        now = time.perf_counter()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the queue did not drain within {timeout} s")
        if not alive():
            raise RuntimeError("the worker exited before finishing")
        pipe = client.pipeline(transaction=False)
        pipe.llen(queue)
        pipe.hlen("unacked")
        queued, unacked = pipe.execute()
        if started is None and queued < total:
            started = now
            if meter is not None:
                meter.start()
        # Results are counted only once the queue is empty: KEYS is too slow to poll.
        if (
            started is not None
            and queued == 0
            and unacked == 0
            and (not results or len(client.keys("celery-task-meta-*")) >= total)
        ):
            return now - started, meter.stop() if meter is not None else {}
        time.sleep(POLL_SECONDS)


def _start_profiled(stack: Stack, node: str, app: str) -> Proc:
    """A worker on the default queue, started as its profile (Procfile, ``aia worker``) says."""
    profile = PROFILES[Queue.DEFAULT]
    return stack.start_worker(
        node,
        app=app,
        pool=profile.pool,
        concurrency=profile.concurrency,
        prefetch=profile.prefetch_multiplier,
    )


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
    worker = _start_profiled(stack, "bench", "aia_workers")
    try:
        meter = CpuMeter(stack.redis, worker, recorder)
        seconds, cpu = time_drain(stack.redis, count, timeout, worker.alive, meter=meter)
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
    return Run("aia", count, seconds, cpu)


def _queue_noops(app: Celery, count: int, name: str) -> None:
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            app.send_task("bench.noop", producer=producer)
    print(f"  {name}: queued {count} with send_task in {time.perf_counter() - started:.1f} s")


def run_bare(stack: Stack, count: int, timeout: float) -> Run:
    stack.redis.flushdb()
    os.environ["BENCH_REDIS_URL"] = stack.redis_url
    from bare_celery_app import app

    _queue_noops(app, count, "bare")
    worker = _start_profiled(stack, "bare", "bare_celery_app")
    try:
        meter = CpuMeter(stack.redis, worker)
        seconds, cpu = time_drain(stack.redis, count, timeout, worker.alive, meter=meter)
    finally:
        stack.stop(worker)
    return Run("bare", count, seconds, cpu)


def run_defaults(stack: Stack, count: int, timeout: float) -> Run:
    stack.redis.flushdb()
    os.environ["BENCH_REDIS_URL"] = stack.redis_url
    from celery_defaults_app import app

    _queue_noops(app, count, "defaults")
    # No pool, concurrency or prefetch option: what Celery picks by itself.
    # No mingle or gossip, as for the other two: there is no other worker.
    argv = [CELERY, "-A", "celery_defaults_app", "worker", "-n", "defaults@%h"]
    argv += ["--without-mingle", "--without-gossip", "-l", "warning"]
    worker = stack.spawn("worker-defaults", argv)
    try:
        meter = CpuMeter(stack.redis, worker)
        seconds, cpu = time_drain(
            stack.redis, count, timeout, worker.alive, queue="celery", results=True, meter=meter
        )
    finally:
        stack.stop(worker)
    return Run("defaults", count, seconds, cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of defaults, bare and AIA runs in turn; medians are compared",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per run, seconds")
    parser.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB)
    parser.add_argument("--keep-logs", action="store_true")
    ns = parser.parse_args()

    print(f"worker throughput: {machine()}; Redis DB {ns.redis_db}")
    print(
        f"{ns.tasks} no-op tasks pre-queued; aia and bare: {_profile_text()}; "
        f"{ns.rounds} rounds (this machine's speed drifts, so runs interleave)"
    )
    runs: dict[str, list[Run]] = {"defaults": [], "bare": [], "aia": []}
    with Stack(ns.redis_db, keep_logs=ns.keep_logs) as stack:
        for _ in range(ns.rounds):
            runs["defaults"].append(run_defaults(stack, ns.tasks, ns.timeout))
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
    print()
    cpu = _print_cpu(runs)
    print()
    for name in ("defaults", "bare"):
        print(f"aia / {name}: {_ratio(medians['aia'], medians[name]):.2f} x the median")
    ratio = _ratio(medians["aia"], medians[GOAL_REFERENCE])
    fast = ratio >= GOAL_RATIO
    lean = cpu["aia"] <= cpu[GOAL_REFERENCE]
    print(
        f"goal: aia >= {GOAL_RATIO} x Celery with its defaults -> {ratio:.2f} x "
        f"(medians {medians['aia']:.0f} vs {medians[GOAL_REFERENCE]:.0f} tasks/s): "
        f"{'met' if fast else 'NOT met'}"
    )
    print(
        f"goal: aia's CPU per task <= Celery with its defaults' -> "
        f"{cpu['aia']:.0f} vs {cpu[GOAL_REFERENCE]:.0f} us (median totals): "
        f"{'met' if lean else 'NOT met'}"
    )
    return 0


def _print_cpu(runs: dict[str, list[Run]]) -> dict[str, float]:
    """Print each round's CPU microseconds per task by process group; median totals by run."""
    print("CPU us per task, by process group, per round" + _redis_note())
    print(f"{'run':<10}" + "".join(f"{g:>10}" for g in GROUPS) + f"{'total':>10}")
    totals: dict[str, float] = {}
    for name, results in runs.items():
        for result in results:
            cells = (result.cpu_us(group) for group in GROUPS)
            row = "".join(f"{'-' if c is None else f'{c:.0f}':>10}" for c in cells)
            print(f"{name:<10}{row}{result.total_cpu_us:>10.0f}")
        totals[name] = statistics.median(r.total_cpu_us for r in results)
    return totals


def _redis_note() -> str:
    if REDIS_PORT == SHARED_REDIS_PORT:
        return " (the Redis server is shared: its CPU is not counted)"
    return ""


def _profile_text() -> str:
    profile = PROFILES[Queue.DEFAULT]
    return (
        f"-P {profile.pool} -c {profile.concurrency} "
        f"--prefetch-multiplier={profile.prefetch_multiplier}"
    )


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference else 0.0


if __name__ == "__main__":
    sys.exit(main())
