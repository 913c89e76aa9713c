"""End-to-end latency: POST /v1/tasks until the ``succeeded`` event arrives on its SSE stream.

One API process and one prefork worker (default queue, ``-c 2``), a no-op
``diagnostics.sleep`` (seconds 0, steps 1), one task at a time: submit, open the
stream as soon as the POST returns, stop the clock at ``event: succeeded``.

The events' own timestamps (taken by the API and the worker on this machine)
split each round trip into: submit (the POST), queue wait (queued -> started),
run (started -> succeeded) and delivery (succeeded published -> seen here).

Two references run in the same Redis database, their round trips interleaved
one for one with AIA's: (a) bare Celery, a task of ``bench/bare_pubsub_app.py``
(AIA's Celery settings, its own prefork worker with the same concurrency) whose
body PUBLISHes on a channel this client subscribed to before ``send_task``;
(b) a bare loop, ``bench/bare_loop.py``: LPUSH -> BRPOP -> PUBLISH, the same
pre-subscribed channel. Goal: AIA's p50 <= 2 x (a)'s and its p99 <= 3 x (a)'s.

    .venv/bin/python bench/e2e_latency.py [--iterations 300] [--warmup 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import redis
from _harness import (
    CELERY,
    DEFAULT_REDIS_DB,
    PYTHON,
    SLEEP_BODY,
    Stack,
    auth_headers,
    machine,
    percentile,
)

# AIA's percentiles as multiples of bare Celery's, measured in the same run.
GOAL_P50_RATIO = 2.0
GOAL_P99_RATIO = 3.0
REFERENCE_CHANNEL = "bench:e2e:reply"
LOOP_KEY = "bench:e2e:loop"


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


class PubSubReply:
    """A channel this client subscribed to before sending anything; waits for one token."""

    def __init__(self, client: redis.Redis) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(REFERENCE_CHANNEL)
        self._count = 0

    def round_trip(self, send: Callable[[str], None]) -> float:
        """Seconds from ``send(token)`` being called to ``token`` arriving on the channel."""
        self._count += 1
        token = str(self._count)
        started = time.perf_counter()
        send(token)
        deadline = started + 10.0
        while time.perf_counter() < deadline:
            message = self.pubsub.get_message(timeout=deadline - time.perf_counter())
            if message is not None and message["data"].decode() == token:
                return time.perf_counter() - started
        raise TimeoutError(
            f"no reply {token} on {REFERENCE_CHANNEL} within 10 s from {send.__name__}"
        )

    def close(self) -> None:
        self.pubsub.close()


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
        # The bare Celery app reads its broker from BENCH_REDIS_URL at import,
        # in its worker and in this process alike.
        os.environ["BENCH_REDIS_URL"] = stack.env["BENCH_REDIS_URL"] = stack.redis_url
        import bare_pubsub_app

        if not ns.no_recorder:
            stack.start_recorder()
        _, base = stack.start_api()
        worker = stack.start_worker("bench", concurrency=ns.concurrency)
        stack.spawn(
            "worker-bare",
            [
                CELERY,
                "-A",
                "bare_pubsub_app",
                "worker",
                "-Q",
                bare_pubsub_app.QUEUE,
                "-P",
                "prefork",
                "-c",
                str(ns.concurrency),
                "--prefetch-multiplier=4",
                "-n",
                "bare@%h",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "warning",
            ],
        )
        stack.spawn("bare-loop", [PYTHON, "bench/bare_loop.py", stack.redis_url, LOOP_KEY])
        stack.wait_worker_registered(worker, "bench")
        reply_client = redis.Redis.from_url(stack.redis_url)
        reply = PubSubReply(reply_client)

        def via_celery(token: str) -> None:
            # No result is stored, as for AIA's tasks; without ignore_result the
            # client would also SUBSCRIBE to the result's channel before sending.
            bare_pubsub_app.app.send_task(
                bare_pubsub_app.TASK,
                args=[REFERENCE_CHANNEL, token],
                queue=bare_pubsub_app.QUEUE,
                ignore_result=True,
            )

        def via_loop(token: str) -> None:
            reply_client.lpush(LOOP_KEY, f"{REFERENCE_CHANNEL} {token}")

        with httpx.Client(base_url=base, timeout=10.0, headers=auth_headers()) as client:
            health = []
            for _ in range(200):
                t = time.perf_counter()
                client.get("/health")
                health.append(time.perf_counter() - t)
            # The first bare Celery round trip waits for its worker to be up.
            reply.round_trip(via_celery)
            for _ in range(ns.warmup):
                one_round_trip(client)
                reply.round_trip(via_celery)
                reply.round_trip(via_loop)
            samples = []
            celery_s: list[float] = []
            loop_s: list[float] = []
            wall = time.perf_counter()
            for _ in range(ns.iterations):
                samples.append(one_round_trip(client))
                celery_s.append(reply.round_trip(via_celery))
                loop_s.append(reply.round_trip(via_loop))
            wall = time.perf_counter() - wall
        reply.close()
        reply_client.close()
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
    print(describe("(a) bare Celery send->PUBLISH", celery_s))
    print(describe("(b) LPUSH->BRPOP->PUBLISH loop", loop_s))
    print(f"event sequences seen: {sorted(sequences)}; {ns.iterations / wall:.0f} rounds/s")
    totals = sorted(s.total * 1000 for s in samples)
    bare = sorted(v * 1000 for v in celery_s)
    loop = sorted(v * 1000 for v in loop_s)
    p50, p99 = percentile(totals, 50), percentile(totals, 99)
    bare50, bare99 = percentile(bare, 50), percentile(bare, 99)
    loop50, loop99 = percentile(loop, 50), percentile(loop, 99)
    print(
        f"ratios: AIA / bare Celery p50 {p50 / bare50:.2f} x, p99 {p99 / bare99:.2f} x; "
        f"AIA / loop p50 {p50 / loop50:.2f} x, p99 {p99 / loop99:.2f} x; "
        f"bare Celery / loop p50 {bare50 / loop50:.2f} x"
    )
    met = p50 <= GOAL_P50_RATIO * bare50 and p99 <= GOAL_P99_RATIO * bare99
    print()
    print(
        f"goal: p50 <= {GOAL_P50_RATIO:g} x bare Celery's and p99 <= {GOAL_P99_RATIO:g} x -> "
        f"AIA p50 {p50:.2f} ms against {bare50:.2f} ms ({p50 / bare50:.2f} x), "
        f"p99 {p99:.2f} ms against {bare99:.2f} ms ({p99 / bare99:.2f} x): "
        f"{'met' if met else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
