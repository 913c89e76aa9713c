"""``ops/locust/locustfile.py`` runs its whole mix against a real stack without a failure.

Locust runs in a process of its own (gevent patches the process it is imported
in), headless for a few seconds against the ml stack (a default, an ml and a
drift worker), with a key of a tenant of its own so that its model and tasks
stay out of the other tests' lists.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import Stack, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]
LOCUSTFILE = REPO / "ops" / "locust" / "locustfile.py"
LOCUST = Path(sys.executable).parent / "locust"
MIN_SECONDS = 4
MAX_SECONDS = 40

# One name for each thing the mix does; "ml.train: upload -> model" among them
# says the first predictor trained the model the others waited for.
EXPECTED = {
    ("POST", "/v1/tasks"),
    ("GET", "/v1/tasks/{id}/events"),
    ("TASK", "diagnostics.sleep: submit -> succeeded"),
    ("GET", "/v1/tasks?limit=50"),
    ("GET", "/v1/tasks?limit=50&cursor= (next pages)"),
    ("GET", "/v1/ml/models/{name}"),
    ("POST", "/v1/ml/datasets?name="),
    ("POST", "/v1/ml/experiments"),
    ("POST", "/v1/ml/experiments/{id}/runs"),
    ("TASK", "ml.train: upload -> model"),
    ("POST", "/v1/ml/models/{name}/predict"),
    ("TASK", "ml.predict: submit -> succeeded"),
}


def _seen(csv_prefix: Path) -> set[tuple[str, str]]:
    """The request names Locust's periodically rewritten CSV counts a request of."""
    try:
        with Path(f"{csv_prefix}_stats.csv").open(newline="") as handle:
            return {
                (row["Type"], row["Name"])
                for row in csv.DictReader(handle)
                if row["Type"] and int(row["Request Count"]) > 0
            }
    except (OSError, ValueError, KeyError):
        return set()


def test_the_mix_runs_every_request_without_a_failure(ml_stack: Stack, tmp_path: Path) -> None:
    key = ml_stack.create_key("admin", tenant=f"locust-{uuid.uuid4().hex[:8]}")
    # Submitters, browsers and predictors 3 : 2 : 1. The run lasts until every
    # name has been seen (the predictors' first one waits for a training) for
    # at least MIN_SECONDS, then Locust is stopped as Ctrl-C would.
    locust = subprocess.Popen(
        [
            str(LOCUST),
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--users",
            "6",
            "--spawn-rate",
            "6",
            "--run-time",
            f"{MAX_SECONDS}s",
            "--stop-timeout",
            "10",
            "--host",
            ml_stack.api_url,
            "--csv",
            str(tmp_path / "live"),
            "--json-file",
            str(tmp_path / "stats"),
            "--loglevel",
            "WARNING",
        ],
        cwd=tmp_path,
        env={**os.environ, "AIA_API_KEY": key},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(MIN_SECONDS)
        wait_for(
            lambda: _seen(tmp_path / "live") >= EXPECTED or locust.poll() is not None,
            MAX_SECONDS,
            0.5,
            "every request name of the mix",
        )
        locust.send_signal(signal.SIGTERM)
        output, _ = locust.communicate(timeout=30)
    finally:
        if locust.poll() is None:
            locust.kill()
            locust.wait()
    stats = json.loads((tmp_path / "stats.json").read_text())
    counts = {(s["method"], s["name"]): (s["num_requests"], s["num_failures"]) for s in stats}
    failed = {name: c for name, c in counts.items() if c[1]}
    assert not failed, output[-4000:]
    assert locust.returncode == 0, output[-4000:]
    assert {name for name, c in counts.items() if c[0] > 0} >= EXPECTED, counts
    # The browsers read the other lists too.
    assert any(name.startswith("/v1/ml/") and name.endswith("?limit=50") for _, name in counts)
