"""Drift checks by hand through the API, on a real ``ml`` and ``drift`` worker.

A model trained on two features is fed rows whose numeric feature moved;
its check finds that feature drifted and not the other, stores the report,
puts ``model.drift_detected`` in the webhook outbox and sets the gauge. Rows
like the training data do not drift; an uploaded dataset is checked too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from celery import Celery

import celeryconfig
from tests import mldata
from tests.support import Stack, wait_for, wait_status

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def ml(ml_stack: Stack) -> Iterator[httpx.Client]:
    with ml_stack.client(timeout=60) as client:
        yield client


def _rows(n: int, seed: int, shift: float = 0.0, shares: Any = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=shift, size=n)
    c = rng.choice(["red", "green", "blue"], n, p=shares)
    y = 3 * x + (c == "red") + rng.normal(scale=0.1, size=n)
    return pd.DataFrame({"x": x, "c": c, "y": y})


def _upload(client: httpx.Client, frame: pd.DataFrame) -> str:
    dataset = client.post(
        "/v1/ml/datasets",
        params={"name": "drift"},
        content=mldata.to_csv(frame),
        headers={"content-type": "text/csv"},
    )
    assert dataset.status_code == 201, dataset.text
    return str(dataset.json()["id"])


@pytest.fixture(scope="module")
def model(ml: httpx.Client) -> str:
    body = {
        "name": f"drift-{uuid.uuid4().hex[:8]}",
        "task": "regression",
        "dataset_id": _upload(ml, _rows(600, seed=1)),
        "target": "y",
        "time_budget_seconds": 5,
        "options": {"estimator": "ridge"},
    }
    experiment = ml.post("/v1/ml/experiments", json=body)
    assert experiment.status_code == 201, experiment.text
    run = ml.post(experiment.json()["links"]["runs"], json={"seed": 3})
    assert run.status_code == 202, run.text
    done = wait_status(ml, run.json()["task_id"], {"succeeded", "failed"}, timeout=120)
    assert done["status"] == "succeeded", done["error"]
    return str(body["name"])


def _predict(client: httpx.Client, name: str, frame: pd.DataFrame) -> None:
    rows = frame.drop(columns=["y"]).to_dict(orient="records")
    sent = client.post(f"/v1/ml/models/{name}/predict", json={"rows": rows})
    assert sent.status_code == 202, sent.text
    done = wait_status(client, sent.json()["id"], {"succeeded", "failed"}, timeout=60)
    assert done["status"] == "succeeded", done["error"]


def _check(client: httpx.Client, name: str, **body: Any) -> dict[str, Any]:
    """Run a check by hand; its stored report."""
    sent = client.post(f"/v1/ml/models/{name}/drift", json=body)
    assert sent.status_code == 202, sent.text
    assert sent.headers["location"] == sent.json()["links"]["self"]
    assert sent.json()["type"] == "drift.check"
    done = wait_status(client, sent.json()["id"], {"succeeded", "failed"}, timeout=60)
    assert done["status"] == "succeeded", done["error"]
    report = client.get(done["result"]["links"]["report"])
    assert report.status_code == 200, report.text
    return report.json()  # type: ignore[no-any-return]


def _gauge(client: httpx.Client, metric: str, name: str) -> float | None:
    text = client.get("/metrics").text
    found = re.search(rf'^{metric}{{model="{name}",tenant="default"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def test_shifted_traffic_drifts_and_is_announced(ml: httpx.Client, model: str) -> None:
    hook = ml.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/drift", "events": ["model.drift_detected"]},
    ).json()
    _predict(ml, model, _rows(300, seed=2, shift=1.5))

    report = _check(ml, model)

    assert report["window"] == {"kind": "predictions", "since": None, "until": None, "rows": 300}
    verdicts = {f["feature"]: f for f in report["features"]["features"]}
    assert verdicts["x"]["drifted"]
    assert verdicts["x"]["test"] == "ks"
    assert not verdicts["c"]["drifted"]
    assert verdicts["c"]["test"] == "chisquare"
    assert report["drifted_features"] == ["x"]
    assert report["drifted"]
    assert report["drifted_share"] == 0.5
    # y is mostly 3x: the predictions moved with it.
    assert report["prediction_drifted"] is True
    assert report["performance"] is None
    listed = ml.get(f"/v1/ml/models/{model}/drift").json()
    assert listed["items"][0]["id"] == report["id"]
    messages = ml.get(hook["links"]["messages"], params={"event_type": "model.drift_detected"})
    [message] = [m for m in messages.json()["items"] if m["payload"]["model"] == model]
    assert message["payload"]["report_id"] == report["id"]
    assert message["payload"]["drifted_features"] == ["x"]
    assert _gauge(ml, "aia_model_drifted", model) == 1.0
    assert _gauge(ml, "aia_model_drift_share", model) == 0.5


def test_traffic_like_the_training_data_does_not_drift(ml: httpx.Client, model: str) -> None:
    since = datetime.now(UTC)
    _predict(ml, model, _rows(300, seed=4))

    report = _check(ml, model, since=since.isoformat())

    assert report["window"]["rows"] == 300
    assert report["drifted_features"] == []
    assert not report["drifted"]
    assert report["retrain"] is None
    # The gauge shows the model's latest verdict.
    assert _gauge(ml, "aia_model_drifted", model) == 0.0


def test_an_uploaded_dataset_is_checked_with_the_models_predictions(
    ml: httpx.Client, model: str
) -> None:
    # Red becomes rare, green common: the category moved, the numbers did not.
    dataset = _upload(ml, _rows(400, seed=5, shares=[0.05, 0.6, 0.35]))

    report = _check(ml, model, dataset_id=dataset)

    assert report["window"] == {"kind": "dataset", "dataset_id": dataset, "rows": 400}
    assert report["drifted_features"] == ["c"]
    assert report["predictions"]["features"][0]["feature"] == "prediction"


def test_bad_checks_are_refused_before_they_run(ml: httpx.Client, model: str) -> None:
    unknown = ml.post(
        f"/v1/ml/models/{model}/drift", json={"config": {"features": {"z": {"test": "psi"}}}}
    )
    assert unknown.status_code == 422, unknown.text
    assert unknown.headers["content-type"] == PROBLEM
    assert unknown.json()["errors"][0]["pointer"] == "/config/features/z"
    both = ml.post(
        f"/v1/ml/models/{model}/drift",
        json={"dataset_id": "d", "since": "2026-01-01T00:00:00Z"},
    )
    assert both.status_code == 422
    assert ml.post("/v1/ml/models/nope/drift", json={}).status_code == 404
    assert ml.post(f"/v1/ml/models/{model}/drift", json={"version": 9}).status_code == 404
    missing = ml.post(f"/v1/ml/models/{model}/drift", json={"dataset_id": "no-such"})
    assert missing.status_code == 422
    assert ml.get(f"/v1/ml/models/{model}/drift/no-such").status_code == 404


def test_the_drift_policy_is_kept_per_model(ml: httpx.Client, model: str) -> None:
    base = f"/v1/ml/models/{model}/drift/policy"
    assert ml.get(base).json()["retrain_on"] == "never"
    put = ml.put(base, json={"retrain_on": "dataset_drift", "margin": 0.01})
    assert put.status_code == 200, put.text
    assert put.json()["alias"] == "production"
    assert put.json()["updated_by"].startswith("key:")
    assert ml.get(base).json()["margin"] == 0.01
    assert ml.put(base, json={"retrain_on": "sometimes"}).status_code == 422
    ml.put(base, json={"retrain_on": "never"}).raise_for_status()


def test_a_drifted_report_retrains_under_a_dataset_drift_policy(
    ml: httpx.Client, model: str
) -> None:
    base = f"/v1/ml/models/{model}/drift/policy"
    ml.put(base, json={"retrain_on": "dataset_drift"}).raise_for_status()
    try:
        since = datetime.now(UTC)
        _predict(ml, model, _rows(300, seed=6, shift=2.0))
        report = _check(ml, model, since=since.isoformat())
        assert report["drifted"]
        assert report["retrain"]["trigger"] == "drift"
        retrain = ml.get(f"/v1/tasks/{report['retrain']['task_id']}").json()
        assert retrain["type"] == "ml.retrain"
        assert retrain["payload"]["report_id"] == report["id"]
        assert retrain["payload"]["trigger"] == "drift"
    finally:
        ml.put(base, json={"retrain_on": "never"}).raise_for_status()


def test_the_sweep_checks_every_production_model(
    ml_stack: Stack, ml: httpx.Client, model: str
) -> None:
    ml.post(f"/v1/ml/models/{model}/aliases/production", json={"version": 1}).raise_for_status()
    app = Celery("sweep-test", broker=ml_stack.env["AIA_BROKER_URL"], set_as_current=False)
    app.conf.task_queues = celeryconfig.task_queues
    try:
        app.send_task("drift.sweep", queue="drift")
    finally:
        app.close()

    def swept() -> dict[str, Any] | None:
        listed = ml.get("/v1/tasks", params={"type": "drift.check", "limit": 200}).json()
        for item in listed["items"]:
            view = ml.get(f"/v1/tasks/{item['id']}").json()
            if view["payload"] == {**view["payload"], "model": model, "alias": "production"}:
                return view
        return None

    check = wait_for(swept, 60, 0.5, "the sweep's drift.check of the model")
    done = wait_status(ml, check["id"], {"succeeded", "failed"}, timeout=60)
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["version"] == 1
