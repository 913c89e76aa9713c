"""Faults under submit load: what was accepted, lost, run twice, and how fast work resumed.

Each fault gets a stack of its own (a private Redis on a free port, SQLite, the
API, the recorder, a prefork and a threads worker on the default queue) while
client threads submit ``diagnostics.sleep`` over HTTP:

  redis     Redis (broker, events) is shut down for --outage seconds, then started again
  rabbitmq  RabbitMQ is the broker; it is stopped for --outage seconds, then started
  postgres  a private PostgreSQL (the history and identities) is stopped for --outage
            seconds, then started
  worker    the prefork worker is SIGKILLed (its whole process group) mid-load and a
            replacement starts two seconds later, as a supervisor would do

For each it prints: accepted (202), lost (accepted, never finished), duplicated
(finished more than once), the time from the fault's end to the first newly
accepted task succeeding, and every answer that was not 202 by kind. The
reference is the same stack's acceptance rate before the fault, in the same run.

    .venv/bin/python bench/chaos.py [--faults redis,rabbitmq,postgres,worker] [--outage 60]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.brokers import PrivateRabbitMQ, PrivateRedis  # noqa: E402
from tests.chaos import SubmitLoad, wait_all_terminal  # noqa: E402
from tests.pgserver import running_postgres  # noqa: E402
from tests.support import Process, Stack, history_ids, private_stack  # noqa: E402

VISIBILITY_SECONDS = 20


def _stack(
    tmp: Path, redis_url: str, broker_url: str, database_url: str | None = None
) -> tuple[Stack, list[Process]]:
    env = {"AIA_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_SECONDS)}
    stack = private_stack(tmp, redis_url, broker_url=broker_url, database_url=database_url, env=env)
    stack.start_recorder()
    workers = [
        stack.start_worker("prefork", concurrency=2),
        stack.start_worker("threads", pool="threads", concurrency=4),
    ]
    return stack, workers


def _measure(
    name: str, stack: Stack, fault: Callable[[], None], settle_seconds: float = 5.0
) -> None:
    load = SubmitLoad(stack).start()
    time.sleep(settle_seconds)
    before = len(load.accepted) / settle_seconds
    fault()
    back_at = time.monotonic()
    first_new = len(load.accepted)
    events = stack.redis()
    recovered: float | None = None
    while time.monotonic() - back_at < 60:
        fresh = load.accepted[first_new : first_new + 50]
        if any(events.hget(f"aia:task:{t}", "status") == "succeeded" for t in fresh):
            recovered = time.monotonic() - back_at
            break
        time.sleep(0.1)
    time.sleep(3)
    load.stop()
    result = wait_all_terminal(events, load.accepted, timeout=VISIBILITY_SECONDS * 6)
    for task_id in result.unfinished[:5]:
        record = events.hgetall(f"aia:task:{task_id}")
        print(f"  unfinished {task_id}: {record.get('status')}, attempts {record.get('attempts')}")
    missing = _missing_from_history(stack, set(load.accepted))
    others = {k: v for k, v in sorted(load.answers.items()) if k != "202"}
    recovery = f"{recovered:.1f} s" if recovered is not None else "not within 60 s"
    print(
        f"{name:<9} accepted {len(load.accepted):>6}  lost {result.lost:>4}  "
        f"duplicated {len(result.duplicated):>3}  not in history {missing:>4}  "
        f"resumed after {recovery:>14}  "
        f"reference {before:.0f} accepted/s before the fault  other answers {others}",
        flush=True,
    )


def _missing_from_history(stack: Stack, accepted: set[str], wait_seconds: float = 60) -> int:
    """How many accepted tasks the recorded history still lacks after ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    with stack.client() as client:
        while True:
            missing = len(accepted - history_ids(client))
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(1)


def _redis_fault(tmp: Path, outage: float) -> None:
    server = PrivateRedis(tmp / "redis")
    server.start()
    stack, _ = _stack(tmp, server.url, server.url)
    try:

        def fault() -> None:
            server.shutdown()
            time.sleep(outage)
            server.start()

        _measure("redis", stack, fault)
    finally:
        stack.stop()
        server.close()


def _rabbitmq_fault(tmp: Path, outage: float) -> None:
    server = PrivateRedis(tmp / "redis")
    server.start()
    rabbit = PrivateRabbitMQ()
    rabbit.start()
    stack, _ = _stack(tmp, server.url, rabbit.url)
    try:

        def fault() -> None:
            rabbit.stop()
            time.sleep(outage)
            rabbit.start()

        _measure("rabbitmq", stack, fault)
    finally:
        stack.stop()
        rabbit.close()
        server.close()


def _postgres_fault(tmp: Path, outage: float) -> None:
    server = PrivateRedis(tmp / "redis")
    server.start()
    with running_postgres() as database:
        stack, _ = _stack(tmp, server.url, server.url, database.createdb("aia"))
        try:

            def fault() -> None:
                database.stop()
                time.sleep(outage)
                database.start()

            _measure("postgres", stack, fault)
        finally:
            stack.stop()
            server.close()


def _worker_fault(tmp: Path, _outage: float) -> None:
    server = PrivateRedis(tmp / "redis")
    server.start()
    stack, workers = _stack(tmp, server.url, server.url)
    try:

        def fault() -> None:
            os.killpg(workers[0].popen.pid, signal.SIGKILL)
            time.sleep(2)
            stack.start_worker("prefork-2", concurrency=2)

        _measure("worker", stack, fault)
    finally:
        stack.stop()
        server.close()


FAULTS = {
    "redis": _redis_fault,
    "rabbitmq": _rabbitmq_fault,
    "postgres": _postgres_fault,
    "worker": _worker_fault,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", default="redis,rabbitmq,postgres,worker")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds a service is down")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores; outage {args.outage:.0f} s; 4 submitting clients")
    for name in args.faults.split(","):
        with tempfile.TemporaryDirectory(prefix=f"aia-chaos-{name}-") as tmp:
            FAULTS[name](Path(tmp), args.outage)


if __name__ == "__main__":
    main()
