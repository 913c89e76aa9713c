"""End-to-end latency: POST /v1/tasks until the ``succeeded`` event arrives on its SSE stream.

One API process and one prefork worker (default queue, ``-c 2``), a no-op
``diagnostics.sleep`` (seconds 0, steps 1), one task at a time: submit, open the
stream as soon as the POST returns, stop the clock at ``event: succeeded``.

The events' own timestamps (taken by the API and the worker on this machine)
split each round trip into: submit (the POST), queue wait (queued -> started),
run (started -> succeeded) and delivery (succeeded published -> seen here).

    .venv/bin/python bench/e2e_latency.py [--iterations 300] [--warmup 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass

import httpx
from _harness import DEFAULT_REDIS_DB, SLEEP_BODY, Stack, auth_headers, machine, percentile

GOAL_P50_MS = 5.0
GOAL_P99_MS = 15.0


@dataclass(frozen=True)
class Sample:
    total: float  # POST sent -> succeeded seen, seconds
    submit: float  # the POST round trip
    queue_wait: float  # queued -> started (event times)
    run: float  # started -> succeeded (event times)
    delivery: float  # succeeded event time -> seen by this client
    stream_open: float  # POST returned -> SSE response headers received
    events: tuple[str, ...]


def one_round_trip(client: httpx.Client) -> Sample:
    started = time.perf_counter()
    response = client.post("/v1/tasks", json=SLEEP_BODY)
    posted = time.perf_counter()
    if response.status_code != 202:
        raise RuntimeError(f"submit: {response.status_code} {response.text}")
    task = response.json()
    names: list[str] = []
    times: dict[str, float] = {}
    done_perf = done_wall = 0.0
    name = ""
    with client.stream("GET", task["links"]["events"]) as stream:
        opened = time.perf_counter()
        if stream.status_code != 200:
            raise RuntimeError(f"stream: {stream.status_code} {stream.read()!r}")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
                names.append(name)
                if name == "succeeded":
                    done_perf, done_wall = time.perf_counter(), time.time()
            elif line.startswith("data: ") and name:
                times.setdefault(name, float(json.loads(line[6:])["time"] or 0.0))
            # The server ends the stream after the terminal event; read it to the end
            # so the keep-alive connection is reused.
    if "succeeded" not in names:
        raise RuntimeError(f"task {task['id']}: stream ended after {names} without succeeded")
    return Sample(
        total=done_perf - started,
        submit=posted - started,
        queue_wait=times.get("started", 0.0) - times.get("queued", 0.0),
        run=times.get("succeeded", 0.0) - times.get("started", 0.0),
        delivery=done_wall - times.get("succeeded", 0.0),
        stream_open=opened - posted,
        events=tuple(names),
    )


def describe(label: str, values_s: list[float]) -> str:
    ms = sorted(v * 1000 for v in values_s)
    return (
        f"{label:<32} p50 {percentile(ms, 50):7.2f}  p90 {percentile(ms, 90):7.2f}  "
        f"p99 {percentile(ms, 99):7.2f}  mean {statistics.fmean(ms):7.2f}  max {ms[-1]:7.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2, help="worker -c")
    parser.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB)
    parser.add_argument(
        "--no-recorder",
        action="store_true",
        help="leave ``aia recorder`` out, as if it ran on another machine",
    )
    parser.add_argument("--keep-logs", action="store_true")
    ns = parser.parse_args()

    print(f"end-to-end latency: {machine()}; Redis DB {ns.redis_db}")
    print(
        f"{ns.warmup} warm-up + {ns.iterations} sequential diagnostics.sleep(0) round trips, "
        f"one prefork worker -c {ns.concurrency}"
        + (", no recorder on this machine" if ns.no_recorder else ", with aia recorder")
    )
    with Stack(ns.redis_db, keep_logs=ns.keep_logs) as stack:
        if not ns.no_recorder:
            stack.start_recorder()
        _, base = stack.start_api()
        worker = stack.start_worker("bench", concurrency=ns.concurrency)
        stack.wait_worker_registered(worker, "bench")
        with httpx.Client(base_url=base, timeout=10.0, headers=auth_headers()) as client:
            health = []
            for _ in range(200):
                t = time.perf_counter()
                client.get("/health")
                health.append(time.perf_counter() - t)
            for _ in range(ns.warmup):
                one_round_trip(client)
            samples = []
            wall = time.perf_counter()
            for _ in range(ns.iterations):
                samples.append(one_round_trip(client))
            wall = time.perf_counter() - wall
        sequences = {s.events for s in samples}

    print()
    print("milliseconds")
    print(describe("end to end (submit->succeeded)", [s.total for s in samples]))
    print(describe("  submit (POST round trip)", [s.submit for s in samples]))
    print(describe("  queue wait (queued->started)", [s.queue_wait for s in samples]))
    print(describe("  run (started->succeeded)", [s.run for s in samples]))
    print(describe("  delivery (succeeded->client)", [s.delivery for s in samples]))
    print(describe("stream open (POST->headers)", [s.stream_open for s in samples]))
    print(describe("GET /health round trip (floor)", health))
    print(f"event sequences seen: {sorted(sequences)}; {ns.iterations / wall:.0f} round trips/s")
    totals = sorted(s.total * 1000 for s in samples)
    p50, p99 = percentile(totals, 50), percentile(totals, 99)
    met = p50 < GOAL_P50_MS and p99 < GOAL_P99_MS
    print()
    print(
        f"goal: p50 < {GOAL_P50_MS:g} ms and p99 < {GOAL_P99_MS:g} ms -> p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms, mean {statistics.fmean(totals):.2f} ms: {'met' if met else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
