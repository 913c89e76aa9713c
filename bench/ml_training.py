"""ML through AIA: training overhead against scikit-learn called directly, and cached predictions.

Training: one random forest on a synthetic table (``make_classification``),
sized so its fit takes about ``--fit-seconds`` here. Directly: the same
pipeline (``tabular.build_pipeline``, same estimator and parameters) fitted on
the same training split in this process. Through AIA: ``POST
/v1/ml/experiments/{id}/runs`` with that one estimator, until the task's
``succeeded`` event arrives on its SSE stream: the worker reads and checks the
stored CSV, splits, fits, scores the holdout, writes and checksums the
artifact and registers the version. Rounds alternate direct and AIA runs, and
the medians are compared.

Prediction: ``POST /v1/ml/models/{name}/predict`` with one row, one call at a
time, until ``succeeded`` is seen on the SSE stream, after a warm-up that
loads the model into the worker's cache.

    .venv/bin/python bench/ml_training.py [--rounds 3] [--fit-seconds 10] [--predictions 200]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from typing import Any

import httpx
import pandas as pd
from _harness import DEFAULT_REDIS_DB, Stack, auth_headers, machine, percentile
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from aia_workers.ml.contracts.tables import ColumnKind
from aia_workers.ml.trainers.tabular import build_pipeline

GOAL_OVERHEAD = 0.10
SEED = 0


def _table(rows: int, features: int) -> pd.DataFrame:
    x, y = make_classification(
        n_samples=rows, n_features=features, n_informative=features // 2, random_state=SEED
    )
    frame = pd.DataFrame(x.round(5), columns=[f"f{i}" for i in range(features)])
    frame["label"] = y
    return frame


def _forest(trees: int) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=trees, random_state=SEED, n_jobs=1)


def _direct_predict_ms(frame: pd.DataFrame, trees: int) -> float:
    """Median milliseconds for the same fitted pipeline to predict one row, in this process."""
    x, y = frame.drop(columns=["label"]), frame["label"]
    pipeline = build_pipeline({c: ColumnKind.NUMERIC for c in x.columns}, _forest(trees))
    pipeline.fit(x, y)
    row = x.iloc[:1]
    times = []
    for _ in range(50):
        started = time.perf_counter()
        pipeline.predict_proba(row)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _direct(frame: pd.DataFrame, trees: int) -> float:
    """Seconds to fit the same pipeline on the same 80 % split, in this process."""
    x, y = frame.drop(columns=["label"]), frame["label"]
    x_train, _, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    pipeline = build_pipeline({c: ColumnKind.NUMERIC for c in x.columns}, _forest(trees))
    started = time.perf_counter()
    pipeline.fit(x_train, y_train)
    return time.perf_counter() - started


def _until_succeeded(client: httpx.Client, events_path: str) -> dict[str, Any]:
    with client.stream("GET", events_path, timeout=600) as response:
        event = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("succeeded", "failed", "cancelled"):
                data: dict[str, Any] = json.loads(line.split(":", 1)[1])
                if event != "succeeded":
                    raise RuntimeError(f"task {event}: {data}")
                return data
    raise RuntimeError("the stream ended before the task did")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fit-seconds", type=float, default=10.0)
    parser.add_argument("--predictions", type=int, default=200)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    frame = _table(args.rows, args.features)
    # Size the forest so one direct fit takes about --fit-seconds.
    probe = 20
    per_tree = _direct(frame, probe) / probe
    trees = max(probe, round(args.fit_seconds / per_tree))
    print(f"{machine()}; {args.rows} rows x {args.features} features, {trees} trees")

    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    csv = buffer.getvalue().encode()

    with Stack(args.redis_db, keep_logs=args.keep_logs) as stack:
        _, base = stack.start_api()
        stack.start_recorder()
        worker = stack.start_worker("ml", concurrency=1, queues="ml", prefetch=1)
        stack.wait_worker_registered(worker, "ml", timeout=60)
        with httpx.Client(base_url=base, headers=auth_headers(), timeout=60) as client:
            dataset = client.post(
                "/v1/ml/datasets",
                params={"name": "bench"},
                content=csv,
                headers={"content-type": "text/csv"},
            )
            dataset.raise_for_status()
            experiment = client.post(
                "/v1/ml/experiments",
                json={
                    "name": "bench-forest",
                    "task": "classification",
                    "dataset_id": dataset.json()["id"],
                    "target": "label",
                    "time_budget_seconds": 3600,
                    "options": {
                        "estimator": "random_forest",
                        "params": {"n_estimators": trees, "n_jobs": 1},
                    },
                },
            )
            experiment.raise_for_status()
            runs_path = experiment.json()["links"]["runs"]

            direct: list[float] = []
            through: list[float] = []
            fits: list[float] = []
            for round_number in range(1, args.rounds + 1):
                direct.append(_direct(frame, trees))
                started = time.perf_counter()
                run = client.post(runs_path, json={"seed": SEED})
                run.raise_for_status()
                result = _until_succeeded(client, run.json()["task"]["links"]["events"])
                through.append(time.perf_counter() - started)
                version = client.get(result["data"]["result"]["links"]["version"]).json()
                fits.append(float(version["details"]["fit_seconds"]))
                print(
                    f"  round {round_number}: direct fit {direct[-1]:.2f} s; through AIA "
                    f"{through[-1]:.2f} s (its fit {fits[-1]:.2f} s)",
                    flush=True,
                )
            overhead = statistics.median(through) / statistics.median(direct) - 1

            model = "bench-forest"
            row = frame.drop(columns=["label"]).iloc[0].to_dict()
            latencies: list[float] = []
            for i in range(args.predictions + 10):
                started = time.perf_counter()
                task = client.post(f"/v1/ml/models/{model}/predict", json={"rows": [row]})
                task.raise_for_status()
                _until_succeeded(client, task.json()["links"]["events"])
                if i >= 10:  # the first calls load the model and warm the connection
                    latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
    model_ms = _direct_predict_ms(frame, trees)

    print(
        f"training: direct median {statistics.median(direct):.2f} s, through AIA median "
        f"{statistics.median(through):.2f} s; overhead {overhead:+.1%} "
        f"(the worker's own fit: median {statistics.median(fits):.2f} s)"
    )
    print(
        f"cached prediction, 1 row, POST to succeeded: p50 {percentile(latencies, 50):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms over {len(latencies)} calls; the model alone "
        f"takes {model_ms:.1f} ms (predict_proba, one row, in process)"
    )
    met = overhead < GOAL_OVERHEAD
    print(
        f"goal: training overhead < {GOAL_OVERHEAD:.0%} for a ~{args.fit_seconds:.0f} s fit: "
        f"{'met' if met else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
