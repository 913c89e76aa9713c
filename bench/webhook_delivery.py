"""Webhook deliveries: how many per second one webhooks worker sends, and how soon they arrive.

One webhooks worker process (threads pool, ``-c 64``, as its profile says)
delivers to a receiver on 127.0.0.1 that answers 200 at once (a
ThreadingHTTPServer in this process, recording arrival times).

* Throughput: ``--messages`` (2,000) messages are written straight into the
  outbox in one transaction (as a burst of events would be), the relay is
  woken, and the clock runs until the receiver has them all; every delivery
  is signed, claimed, sent and logged as usual.
* Delay, test events: ``POST /v1/webhooks/{id}/test`` one at a time; from
  sending the POST to the receiver's arrival time.
* Delay, task ends: a no-op ``diagnostics.sleep`` one at a time, with a
  default worker and the recorder running; from the task's ``succeeded`` event
  time (taken by the worker) to arrival, through the recorder's batch, the
  outbox, the relay and the delivery.

    .venv/bin/python bench/webhook_delivery.py [--messages 2000] [--samples 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import redis
from _harness import DEFAULT_REDIS_DB, SLEEP_BODY, Stack, auth_headers, machine, percentile

from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.settings import Settings
from aia_workers.webhooks.outbox import WAKE_CHANNEL, publish


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.arrivals: dict[str, float] = {}
        self.bodies: dict[str, bytes] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        now = time.time()
        with self.server.lock:
            self.server.arrivals.setdefault(self.headers["webhook-id"], now)
            self.server.bodies[self.headers["webhook-id"]] = body
        # One write: split header and body writes would stall on delayed ACKs
        # and measure the receiver, not AIA.
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.001)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64, help="webhooks worker threads")
    parser.add_argument(
        "--tenant-max-inflight",
        type=int,
        default=0,
        help="AIA_WEBHOOK_TENANT_MAX_INFLIGHT (the messages are one tenant's); 0: the default",
    )
    parser.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB)
    parser.add_argument(
        "--database-url", default="", help="e.g. postgresql+psycopg://root@127.0.0.1/bench"
    )
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    receiver = _Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    print(f"{machine()}; receiver {receiver.url}")

    stack = Stack(args.redis_db, keep_logs=args.keep_logs)
    if args.database_url:
        stack.env["AIA_DATABASE_URL"] = args.database_url
    with stack:
        stack.env.update(
            AIA_WEBHOOK_ALLOWED_NETWORKS='["127.0.0.1"]',
            AIA_WEBHOOK_RELAY_INTERVAL_SECONDS="1",
        )
        if args.tenant_max_inflight:
            stack.env["AIA_WEBHOOK_TENANT_MAX_INFLIGHT"] = str(args.tenant_max_inflight)
        _, base = stack.start_api()
        stack.start_recorder()
        default = stack.start_worker("default", concurrency=2)
        hooks = stack.start_worker(
            "webhooks", concurrency=args.concurrency, queues="webhooks", prefetch=2, pool="threads"
        )
        stack.wait_worker_registered(default, "default")
        stack.wait_worker_registered(hooks, "webhooks")
        settings = Settings(
            database_url=stack.env["AIA_DATABASE_URL"], data_home=stack.home, dev=True
        )
        sessions = make_sessionmaker(make_engine(settings))
        wake = redis.Redis.from_url(stack.redis_url)

        with httpx.Client(base_url=base, headers=auth_headers(), timeout=30) as client:
            endpoint = client.post(
                "/v1/webhooks",
                json={"url": receiver.url, "events": ["task.succeeded"]},
            )
            endpoint.raise_for_status()
            endpoint_id = endpoint.json()["id"]

            # -- throughput ----------------------------------------------------
            with sessions.begin() as session:
                ids = [
                    publish(
                        session,
                        "default",
                        "webhook.test",
                        {"endpoint_id": endpoint_id, "message": f"burst {i}"},
                        endpoint_id=endpoint_id,
                    )[0]
                    for i in range(args.messages)
                ]
            started = time.perf_counter()
            wake.publish(WAKE_CHANNEL, 1)
            _wait(lambda: all(i in receiver.arrivals for i in ids), 600, "the burst")
            burst_seconds = time.perf_counter() - started
            rate = args.messages / burst_seconds

            # -- delay: test events --------------------------------------------
            test_delays = []
            for _ in range(args.samples):
                sent = time.time()
                reply = client.post(f"/v1/webhooks/{endpoint_id}/test")
                reply.raise_for_status()
                ident = reply.json()["id"]
                _wait(lambda ident=ident: ident in receiver.arrivals, 30, "a test event")
                test_delays.append((receiver.arrivals[ident] - sent) * 1000)

            # -- delay: task ends ------------------------------------------------
            task_delays = []
            for _ in range(args.samples):
                task = client.post("/v1/tasks", json=SLEEP_BODY).json()
                found: dict[str, bytes] = {}

                def arrived(task_id: str = task["id"], found: dict = found) -> bool:
                    with receiver.lock:
                        for ident, body in receiver.bodies.items():
                            if task_id.encode() in body:
                                found[ident] = body
                                return True
                    return False

                _wait(arrived, 30, "a task.succeeded delivery")
                [(ident, body)] = found.items()
                finished = json.loads(body)["data"]["finished_at"]
                end = datetime.fromisoformat(finished).timestamp()
                task_delays.append((receiver.arrivals[ident] - end) * 1000)
                with receiver.lock:
                    receiver.bodies.clear()

    test_delays.sort()
    task_delays.sort()
    print(
        f"throughput: {args.messages} deliveries in {burst_seconds:.2f} s = {rate:,.0f}/s "
        f"from one webhooks worker process ({args.concurrency} threads, "
        f"tenant in-flight cap {args.tenant_max_inflight or 'default'})"
    )
    print(
        f"test event, POST to arrival: p50 {percentile(test_delays, 50):.1f} ms, "
        f"p99 {percentile(test_delays, 99):.1f} ms (median {statistics.median(test_delays):.1f})"
    )
    print(
        f"task.succeeded, task end to arrival: p50 {percentile(task_delays, 50):.1f} ms, "
        f"p99 {percentile(task_delays, 99):.1f} ms"
    )
    receiver.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
