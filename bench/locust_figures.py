"""A Locust plugin for ``locust_load.py``: the run's figures as JSON, written at exit.

Loaded beside a locustfile (``-f ops/locust/locustfile.py,bench/locust_figures.py``).
Locust's own CSV files are rewritten every few seconds, not at the end, so they
miss the last requests; this writes every request name's count, failures, p50
and p95, the same for all HTTP requests together, and every distinct error to
``$AIA_LOCUST_FIGURES`` once the users have stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.stats import StatsEntry

_runs: list[Environment] = []


@events.init.add_listener
def _remember(environment: Environment, **_: Any) -> None:
    _runs.append(environment)


@events.quit.add_listener
def _write(**_: Any) -> None:
    target = os.environ.get("AIA_LOCUST_FIGURES")
    if not target or not _runs:
        return
    stats = _runs[-1].stats
    # Round trips fired by hand (type TASK) time requests that are also counted on
    # their own, so the HTTP total leaves them out.
    http = StatsEntry(stats, "HTTP requests", "")
    for entry in stats.entries.values():
        if entry.method != "TASK":
            http.extend(entry)
    figures = {
        "seconds": (stats.total.last_request_timestamp or 0.0) - stats.total.start_time,
        "http": _entry(http),
        "entries": [_entry(e) for e in stats.entries.values() if e.num_requests or e.num_failures],
        "errors": [
            f"{e.occurrences} x {e.method} {e.name}: {e.error}" for e in stats.errors.values()
        ],
    }
    Path(target).write_text(json.dumps(figures, indent=1))


def _entry(entry: StatsEntry) -> dict[str, Any]:
    return {
        "method": entry.method,
        "name": entry.name,
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "p50_ms": entry.get_response_time_percentile(0.5),
        "p95_ms": entry.get_response_time_percentile(0.95),
    }
