"""Locust's load mixes (``ops/locust/locustfile.py``) against a private ``aia dev``.

Starts ``aia dev`` on free ports with a data home of its own in a temp
directory (so its own SQLite, its own Redis, its own admin and API key, read
from the ``credentials.json`` it writes), waits until a worker answers on every
queue, and runs Locust headless in a process of its own:

1. a warm-up of the mix (``--warmup`` s, not counted): the first predictor
   trains the small model the predictors share, and every route has been
   taken once;
2. then ``--rounds`` times: the mix for ``--duration`` s, and the reference,
   the same Locust with the same users for the same time on ``GET /health``
   (``bench/locustfile_health.py``), the API's cheapest route.

Prints, per request name, requests/s, p50, p95 and failures (medians over the
rounds), beside the reference and as ratios to it. Exits 1 if any request
failed, in any round. ``aia dev`` is stopped with SIGTERM, as Ctrl-C would.

    .venv/bin/python bench/locust_load.py [--users 10] [--duration 30] [--rounds 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _harness import AIA, BENCH, REPO, VENV_BIN, Proc, free_port, machine

LOCUST = str(VENV_BIN / "locust")
LOCUSTFILE = REPO / "ops" / "locust" / "locustfile.py"
HEALTH_LOCUSTFILE = BENCH / "locustfile_health.py"
FIGURES_PLUGIN = BENCH / "locust_figures.py"
QUEUES = ("agents", "ml", "drift", "webhooks", "default")
READY_TIMEOUT = 120.0
# SIGTERM lets aia dev stop its workers (each up to a 15 s grace) before its Redis.
DEV_STOP_TIMEOUT = 60.0


@dataclass(frozen=True)
class Row:
    """One request name's figures from one Locust run."""

    method: str
    name: str
    requests: int
    failures: int
    per_second: float
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class Run:
    """One Locust run: each request name's row, all its HTTP requests together, its errors."""

    rows: dict[str, Row]
    total: Row
    failures: list[str]

    @property
    def failed(self) -> int:
        """Failed requests and round trips: a round trip can fail on 2xx answers."""
        return sum(row.failures for row in self.rows.values())


def dev_env(home: Path, users: int) -> dict[str, str]:
    """This environment without any AIA_* setting, so ``aia dev`` makes all of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIA_")}
    env.update(
        AIA_DATA_HOME=str(home),
        # One key stands for every simulated client, each of which may hold a stream.
        AIA_STREAM_MAX_CONNECTIONS=str(max(20, users)),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        PYTHONUNBUFFERED="1",
    )
    return env


def wait_ready(base: str, home: Path, dev: Proc) -> str:
    """Until the API answers and a worker serves every queue; the admin's API key."""
    deadline = time.monotonic() + READY_TIMEOUT
    credentials = home / "credentials.json"
    missing: list[str] = list(QUEUES)
    while time.monotonic() < deadline:
        if not dev.alive():
            raise RuntimeError(f"aia dev exited:\n{dev.tail(40)}")
        key = ""
        with contextlib.suppress(OSError, ValueError):
            key = str(json.loads(credentials.read_text()).get("api_key", ""))
        if key:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                status = httpx.get(
                    f"{base}/status", headers={"Authorization": f"Bearer {key}"}, timeout=5
                ).json()
                count = status["checks"]["workers"]["count"]
                missing = [q for q in QUEUES if not count.get(q)]
                if not missing:
                    return key
        time.sleep(0.5)
    raise TimeoutError(f"aia dev not ready in {READY_TIMEOUT:g} s (no worker on {missing})")


def run_locust(
    locustfile: Path,
    base: str,
    key: str,
    ns: argparse.Namespace,
    seconds: float,
    out: Path,
) -> Run:
    """Locust headless in a process of its own (gevent patches the process it runs in)."""
    out.mkdir(parents=True, exist_ok=True)
    figures = out / "figures.json"
    argv = [
        LOCUST,
        "-f",
        f"{locustfile},{FIGURES_PLUGIN}",
        "--headless",
        "--users",
        str(ns.users),
        "--spawn-rate",
        str(ns.spawn_rate or ns.users),
        "--run-time",
        f"{seconds:g}s",
        "--host",
        base,
        "--only-summary",
        # Users finish the round trip they are in rather than being cut off.
        "--stop-timeout",
        "10",
        "--loglevel",
        "WARNING",
    ]
    env = dict(os.environ, AIA_API_KEY=key, AIA_LOCUST_FIGURES=str(figures))
    log_path = out / "locust.log"
    with log_path.open("wb") as log:
        subprocess.run(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    log_text = log_path.read_text(errors="replace")
    # Locust warns when its own process is the bottleneck.
    for line in [line for line in log_text.splitlines() if "CPU usage" in line][:1]:
        print(f"    locust: {line.split(': ', 1)[-1]}")
    if not figures.exists():
        raise RuntimeError(f"locust wrote no figures:\n{log_text[-3000:]}")
    return read_figures(json.loads(figures.read_text()))


def read_figures(figures: dict[str, Any]) -> Run:
    seconds = max(float(figures["seconds"]), 1e-9)

    def row(entry: dict[str, Any]) -> Row:
        return Row(
            method=entry["method"] or "",
            name=entry["name"],
            requests=int(entry["requests"]),
            failures=int(entry["failures"]),
            per_second=int(entry["requests"]) / seconds,
            p50_ms=float(entry["p50_ms"]),
            p95_ms=float(entry["p95_ms"]),
        )

    rows = {f"{e['method']} {e['name']}": row(e) for e in figures["entries"]}
    return Run(rows, row(figures["http"]), list(figures["errors"]))


def median_row(rows: list[Row]) -> Row:
    """Median figures over the rounds; requests and failures summed."""
    return Row(
        method=rows[0].method,
        name=rows[0].name,
        requests=sum(r.requests for r in rows),
        failures=sum(r.failures for r in rows),
        per_second=statistics.median(r.per_second for r in rows),
        p50_ms=statistics.median(r.p50_ms for r in rows),
        p95_ms=statistics.median(r.p95_ms for r in rows),
    )


def report(mixes: list[Run], references: list[Run]) -> int:
    """Print the table; the number of failed requests over every measured run."""
    health = median_row([r.total for r in references])
    names = sorted({name for run in mixes for name in run.rows})
    print()
    print(
        f"{'request':<52} {'reqs':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'fails':>6}"
        f"  {'p50 / health':>12} {'p95 / health':>12}"
    )

    def line(label: str, row: Row) -> None:
        print(
            f"{label:<52} {row.requests:>6} {row.per_second:>8.1f} {row.p50_ms:>8.0f} "
            f"{row.p95_ms:>8.0f} {row.failures:>6}  {row.p50_ms / health.p50_ms:>12.1f} "
            f"{row.p95_ms / health.p95_ms:>12.1f}"
        )

    for name in names:
        line(name, median_row([run.rows[name] for run in mixes if name in run.rows]))
    mix = median_row([r.total for r in mixes])
    line("all HTTP requests of the mix", mix)
    line("reference: GET /health, same users", health)
    print(
        f"mix requests/s over the reference's: {mix.per_second:.0f} / {health.per_second:.0f} "
        f"= {mix.per_second / health.per_second:.2f}"
    )
    failures = sum(run.failed for run in (*mixes, *references))
    for run in (*mixes, *references):
        for failure in run.failures:
            print(f"  failed: {failure}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10, help="Locust users (default 10)")
    parser.add_argument("--spawn-rate", type=float, help="users started per second (default: all)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of the mix first")
    parser.add_argument("--rounds", type=int, default=1, help="mix + reference pairs")
    parser.add_argument("--keep-logs", action="store_true")
    ns = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="aia-bench-locust-"))
    logs = home / "logs"
    logs.mkdir()
    print(f"locust against aia dev: {machine()}")
    print(
        f"{ns.users} users, closed loop; {ns.warmup:g} s warm-up, then {ns.rounds} x "
        f"({ns.duration:g} s mix + {ns.duration:g} s GET /health)"
    )
    port, flower_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    dev = Proc(
        "aia-dev",
        [AIA, "dev", "--port", str(port), "--flower-port", str(flower_port)],
        dev_env(home / "data", ns.users),
        logs,
    )
    try:
        started = time.monotonic()
        key = wait_ready(base, home / "data", dev)
        print(f"  aia dev ready in {time.monotonic() - started:.1f} s")
        warm = run_locust(LOCUSTFILE, base, key, ns, ns.warmup, logs / "warmup")
        print(f"  warm-up: {warm.total.requests} requests, {warm.failed} failed")
        for failure in warm.failures:
            print(f"    failed: {failure}")
        mixes, references = [], []
        for round_no in range(1, ns.rounds + 1):
            mix_dir, ref_dir = logs / f"mix{round_no}", logs / f"ref{round_no}"
            mixes.append(run_locust(LOCUSTFILE, base, key, ns, ns.duration, mix_dir))
            references.append(run_locust(HEALTH_LOCUSTFILE, base, key, ns, ns.duration, ref_dir))
            print(
                f"  round {round_no}: mix {mixes[-1].total.per_second:.0f} req/s, "
                f"GET /health {references[-1].total.per_second:.0f} req/s"
            )
        failures = report(mixes, references) + warm.failed
    finally:
        dev.stop(DEV_STOP_TIMEOUT)
        if ns.keep_logs:
            print(f"logs kept in {logs}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    print()
    print(
        f"goal: no failed request (warm-up included) -> {failures} failed: "
        f"{'met' if failures == 0 else 'NOT met'}"
    )
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
