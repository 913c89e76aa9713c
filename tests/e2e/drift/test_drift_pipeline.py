"""Drift to retraining end to end: real ``ml`` and ``drift`` workers and a real beat.

Two models are trained and put in production, each with a policy to retrain
on dataset drift. One is fed rows from a world that moved (a shifted input and
a new relation to its target), and its experiment's data is refreshed from
that world; the other is fed rows like its training data. A schedule with a
short interval checks each: the first drifts, is retrained, and its alias
moves because the challenger wins on the fresh holdout; the second does not
drift and is not retrained.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests import mldata
from tests.support import Stack, wait_for, wait_status

pytestmark = pytest.mark.e2e

MARGIN = 0.05


@pytest.fixture(scope="module")
def ml(ml_stack: Stack) -> Iterator[httpx.Client]:
    # One beat for this module; the tests of schedules themselves run two.
    beat = ml_stack.start_beat("drift-pipeline", {"AIA_SYSTEM_SCHEDULES": "[]"})
    with ml_stack.client(timeout=60) as client:
        yield client
    beat.stop()


def _world(n: int, seed: int, *, moved: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=2.0 if moved else 0.0, size=n)
    c = rng.choice(["red", "green", "blue"], n)
    # The moved world answers differently too, so only a model trained on it fits it.
    slope = -2.0 if moved else 3.0
    y = slope * x + 1.5 * (c == "red") + rng.normal(scale=0.2, size=n)
    return pd.DataFrame({"x": x, "c": c, "y": y})


def _upload(client: httpx.Client, frame: pd.DataFrame) -> str:
    dataset = client.post(
        "/v1/ml/datasets",
        params={"name": "pipeline"},
        content=mldata.to_csv(frame),
        headers={"content-type": "text/csv"},
    )
    assert dataset.status_code == 201, dataset.text
    return str(dataset.json()["id"])


def _in_production(client: httpx.Client, prefix: str) -> tuple[str, str]:
    """A trained model with version 1 in production and a dataset-drift policy: name, experiment."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    body = {
        "name": name,
        "task": "regression",
        "dataset_id": _upload(client, _world(600, seed=1, moved=False)),
        "target": "y",
        "time_budget_seconds": 5,
        "options": {"estimator": "ridge"},
    }
    experiment = client.post("/v1/ml/experiments", json=body)
    assert experiment.status_code == 201, experiment.text
    run = client.post(experiment.json()["links"]["runs"], json={"seed": 3})
    assert run.status_code == 202, run.text
    done = wait_status(client, run.json()["task_id"], {"succeeded", "failed"}, timeout=120)
    assert done["status"] == "succeeded", done["error"]
    alias = client.post(f"/v1/ml/models/{name}/aliases/production", json={"version": 1})
    assert alias.status_code == 200, alias.text
    policy = client.put(
        f"/v1/ml/models/{name}/drift/policy",
        json={"retrain_on": "dataset_drift", "margin": MARGIN},
    )
    assert policy.status_code == 200, policy.text
    return name, experiment.json()["links"]["self"]


def _predict(client: httpx.Client, name: str, frame: pd.DataFrame) -> None:
    rows = frame.drop(columns=["y"]).to_dict(orient="records")
    sent = client.post(f"/v1/ml/models/{name}/predict", json={"rows": rows})
    assert sent.status_code == 202, sent.text
    done = wait_status(client, sent.json()["id"], {"succeeded", "failed"}, timeout=60)
    assert done["status"] == "succeeded", done["error"]


def _first_scheduled_report(client: httpx.Client, name: str) -> tuple[dict[str, Any], str]:
    """Schedule a drift check every second until it has stored a report; the report, schedule."""
    created = client.post(
        "/v1/schedules",
        json={
            "name": f"drift-of-{name}",
            "type": "drift.check",
            "payload": {"model": name, "alias": "production"},
            "interval_seconds": 1,
        },
    )
    assert created.status_code == 201, created.text
    schedule = created.json()["links"]["self"]

    def reported() -> dict[str, Any] | None:
        items = client.get(f"/v1/ml/models/{name}/drift").json()["items"]
        return items[-1] if items else None

    first = wait_for(reported, 60, 0.5, f"a scheduled drift check of {name}")
    # One report is what the test needs; later slots would check the new champion.
    assert client.patch(schedule, json={"enabled": False}).status_code == 200

    def settled() -> dict[str, Any] | None:
        # The check stores its report, then submits the retrain its policy asks for.
        report = client.get(f"/v1/ml/models/{name}/drift/{first['id']}")
        assert report.status_code == 200, report.text
        body: dict[str, Any] = report.json()
        return body if body["retrain"] is None or body["retrain"].get("task_id") else None

    return wait_for(settled, 30, 0.2, f"the drift check of {name} to finish"), schedule


def test_a_drifted_model_is_retrained_and_promoted_and_a_steady_one_is_left_alone(
    ml: httpx.Client,
) -> None:
    shifted, shifted_experiment = _in_production(ml, "moved")
    steady, _ = _in_production(ml, "steady")
    # New ground truth from the moved world becomes the experiment's current data.
    fresh = _upload(ml, _world(600, seed=11, moved=True))
    assert ml.patch(shifted_experiment, json={"dataset_id": fresh}).status_code == 200
    _predict(ml, shifted, _world(300, seed=12, moved=True))
    _predict(ml, steady, _world(300, seed=13, moved=False))

    report, schedule = _first_scheduled_report(ml, shifted)
    assert report["drifted"]
    assert "x" in report["drifted_features"]
    assert report["version"] == 1
    ran = ml.get(schedule).json()["last_run"]
    assert ran is not None
    assert ran["task_id"]
    retrain_id = report["retrain"]["task_id"]
    assert report["retrain"]["trigger"] == "drift"
    retrained = wait_status(ml, retrain_id, {"succeeded", "failed"}, timeout=180)
    assert retrained["status"] == "succeeded", retrained["error"]
    assert retrained["type"] == "ml.retrain"
    assert retrained["result"]["decision"] == "promoted"

    model = ml.get(f"/v1/ml/models/{shifted}").json()
    challenger = retrained["result"]["details"]["challenger"]["version"]
    assert model["aliases"]["production"] == challenger
    move = next(c for c in model["alias_history"] if c["to_version"] == challenger)
    assert move["from_version"] == 1
    details = move["details"]
    assert details["decision"] == "promoted"
    assert details["trigger"] == "drift"
    assert details["report_id"] == report["id"]
    assert details["champion"]["version"] == 1
    assert details["challenger"]["score"] >= details["champion"]["score"] + MARGIN

    quiet, _ = _first_scheduled_report(ml, steady)
    assert not quiet["drifted"]
    assert quiet["retrain"] is None
    assert ml.get(f"/v1/ml/models/{steady}").json()["aliases"] == {"production": 1}
    retrains = ml.get("/v1/tasks", params={"type": "ml.retrain", "limit": 200}).json()["items"]
    assert all(
        ml.get(f"/v1/tasks/{t['id']}").json()["payload"]["model"] != steady for t in retrains
    )
