"""Retraining by hand through the API and a real ``ml`` worker: champion against challenger.

The model learns ``y = 3·a`` first; the new data follows ``y = -3·a + 2·b``
(the relation changed), so a challenger trained on it beats the champion.
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
from tests.support import Stack, wait_status

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def ml(ml_stack: Stack) -> Iterator[httpx.Client]:
    with ml_stack.client(timeout=60) as client:
        yield client


def _frame(relation: str, seed: int, rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    noise = rng.normal(scale=0.1, size=rows)
    y = 3 * a + noise if relation == "old" else -3 * a + 2 * b + noise
    return pd.DataFrame({"a": a, "b": b, "y": y})


def _upload(client: httpx.Client, frame: pd.DataFrame) -> str:
    response = client.post(
        "/v1/ml/datasets",
        params={"name": "retrain"},
        content=mldata.to_csv(frame),
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _retrain(client: httpx.Client, name: str, **body: Any) -> tuple[str, dict[str, Any]]:
    """The task's id and result."""
    response = client.post(f"/v1/ml/models/{name}/retrain", json=body)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == response.json()["links"]["self"]
    assert response.json()["queue"] == "ml"
    done = wait_status(client, response.json()["id"], {"succeeded", "failed"}, timeout=120)
    assert done["status"] == "succeeded", done["error"]
    return str(done["id"]), done["result"]


def test_a_challenger_on_changed_data_takes_the_alias_unless_the_margin_says_no(
    ml: httpx.Client,
) -> None:
    old = _upload(ml, _frame("old", seed=0))
    hook = ml.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/retrain", "events": ["model.alias_changed"]},
    ).json()
    experiment = ml.post(
        "/v1/ml/experiments",
        json={
            "name": f"retrain-{uuid.uuid4().hex[:8]}",
            "task": "regression",
            "dataset_id": old,
            "target": "y",
            "time_budget_seconds": 5,
            "options": {"estimator": "ridge"},
        },
    ).json()
    run = ml.post(experiment["links"]["runs"], json={"seed": 0}).json()
    trained = wait_status(ml, run["task_id"], {"succeeded", "failed"}, timeout=120)
    assert trained["status"] == "succeeded", trained["error"]
    name = experiment["model_name"]
    base = f"/v1/ml/models/{name}"
    ml.post(f"{base}/aliases/production", json={"version": 1}).raise_for_status()

    new = _upload(ml, _frame("new", seed=1))
    task_id, promoted = _retrain(ml, name, dataset_id=new, seed=4)
    assert promoted["decision"] == "promoted"
    assert promoted["version"] == 2
    _, kept = _retrain(ml, name, dataset_id=new, margin=1000)
    assert kept["decision"] == "kept"
    assert kept["version"] == 2

    model = ml.get(base).json()
    assert model["aliases"] == {"production": 2}
    assert [v["version"] for v in model["versions"]] == [3, 2, 1]
    history = model["alias_history"]
    assert [(h["from_version"], h["to_version"]) for h in history] == [(2, 2), (1, 2), (None, 1)]
    decision = history[1]["details"]
    assert decision["decision"] == "promoted"
    assert (decision["trigger"], decision["metric"]) == ("manual", "r2")
    assert decision["dataset_id"] == new
    assert decision["champion"]["version"] == 1
    assert decision["challenger"]["version"] == 2
    # The old relation explains none of the new data; the new one nearly all of it.
    assert decision["champion"]["score"] < 0.5 < decision["challenger"]["score"]
    assert decision["holdout_rows"] == 24
    assert history[1]["changed_by"] == f"task:{task_id}"
    assert history[0]["details"]["decision"] == "kept"
    assert history[0]["details"]["margin"] == 1000
    assert history[0]["details"]["challenger"]["version"] == 3
    assert history[2]["details"] is None  # moved by hand

    # Only the moves went to the outbox; the kept decision did not.
    sent = ml.get(hook["links"]["messages"], params={"event_type": "model.alias_changed"})
    moves = [
        (m["payload"]["from_version"], m["payload"]["to_version"]) for m in sent.json()["items"]
    ]
    assert moves == [(1, 2), (None, 1)]
    assert sent.json()["items"][0]["payload"]["details"] == decision

    # A rollback undoes the last move, not the decision that moved nothing.
    rolled = ml.post(f"{base}/aliases/production/rollback")
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"] == 1


def test_a_retrain_that_cannot_run_is_refused_before_it_is_queued(ml: httpx.Client) -> None:
    missing = ml.post("/v1/ml/models/no-such-model/retrain", json={})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM

    old = _upload(ml, _frame("old", seed=0))
    name = f"refused-{uuid.uuid4().hex[:8]}"
    created = ml.post(
        "/v1/ml/experiments",
        json={
            "name": name,
            "task": "regression",
            "dataset_id": old,
            "target": "y",
            "features": ["a", "b"],
            "time_budget_seconds": 5,
        },
    )
    assert created.status_code == 201, created.text
    base = f"/v1/ml/models/{name}/retrain"
    for body, where in (
        ({"margin": -1}, "margin"),
        ({"holdout_fraction": 0.9}, "holdout_fraction"),
        ({"trigger": "drift"}, "trigger"),  # set by who triggers it, not by hand
        ({"model": "other"}, "model"),
    ):
        refused = ml.post(base, json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["errors"][0]["loc"][-1] == where
    lacking = _upload(ml, _frame("new", seed=1).drop(columns=["b"]))
    refused = ml.post(base, json={"dataset_id": lacking})
    assert refused.status_code == 422
    assert "lacks the column(s) 'b'" in refused.json()["detail"]
    nowhere = ml.post(base, json={"dataset_id": str(uuid.uuid4())})
    assert nowhere.status_code == 422
    assert nowhere.json()["type"].endswith("dataset-not-found")
