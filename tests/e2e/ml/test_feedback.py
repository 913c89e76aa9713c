"""Ground truth through the API: train, predict, send the true labels back by prediction id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import mldata
from tests.support import Stack, wait_status

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def ml(ml_stack: Stack) -> Iterator[httpx.Client]:
    with ml_stack.client(timeout=60) as client:
        yield client


def _trained_classifier(client: httpx.Client) -> str:
    """A breast cancer classifier (classes 0 and 1); its model name."""
    dataset = client.post(
        "/v1/ml/datasets",
        params={"name": "breast-cancer"},
        content=mldata.to_csv(mldata.breast_cancer()),
        headers={"content-type": "text/csv"},
    )
    assert dataset.status_code == 201, dataset.text
    experiment = client.post(
        "/v1/ml/experiments",
        json={
            "name": f"feedback-{uuid.uuid4().hex[:8]}",
            "task": "classification",
            "dataset_id": dataset.json()["id"],
            "target": "target",
            "time_budget_seconds": 10,
            "options": {"estimator": "logistic_regression"},
        },
    )
    assert experiment.status_code == 201, experiment.text
    run = client.post(experiment.json()["links"]["runs"], json={})
    assert run.status_code == 202, run.text
    done = wait_status(client, run.json()["task_id"], {"succeeded", "failed"}, timeout=120)
    assert done["status"] == "succeeded", done["error"]
    return str(done["result"]["model"])


def _predict(client: httpx.Client, model: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post(f"/v1/ml/models/{model}/predict", json={"rows": rows})
    assert response.status_code == 202, response.text
    done = wait_status(client, response.json()["id"], {"succeeded", "failed"}, timeout=60)
    assert done["status"] == "succeeded", done["error"]
    return done["result"]  # type: ignore[no-any-return]


def test_labels_sent_for_returned_ids_show_in_the_log(ml: httpx.Client, ml_stack: Stack) -> None:
    model = _trained_classifier(ml)
    frame = mldata.breast_cancer().sample(40, random_state=3)
    truth = frame["target"].tolist()
    result = _predict(ml, model, frame.drop(columns=["target"]).to_dict(orient="records"))
    ids = result["prediction_ids"]
    # The stack logs every row, so every prediction has an id, in the same order.
    assert len(ids) == len(result["predictions"]) == 40
    assert all(isinstance(i, str) for i in ids)
    assert len(set(ids)) == 40
    assert {"model", "version", "predictions", "model_cache"} <= set(result)

    feedback = f"/v1/ml/models/{model}/feedback"
    sent = ml.post(
        feedback,
        json={"items": [{"prediction_id": i, "label": t} for i, t in zip(ids, truth, strict=True)]},
    )
    assert sent.status_code == 200, sent.text
    assert sent.json() == {"labelled": 40, "unknown": []}

    logged = ml.get(f"/v1/ml/models/{model}/predictions", params={"limit": 100}).json()["items"]
    labels = {p["id"]: p["label"] for p in logged}
    assert [labels[i] for i in ids] == truth
    assert all(p["labelled_at"] is not None for p in logged)
    by_id = {p["id"]: p for p in logged}
    first = by_id[ids[0]]
    assert first["outputs"] == result["predictions"][0]

    # Labelling again overwrites; ids this model never logged come back as unknown.
    missing = str(uuid.uuid4())
    flipped = 1 - truth[0]
    again = ml.post(
        feedback,
        json={
            "items": [
                {"prediction_id": ids[0], "label": flipped},
                {"prediction_id": missing, "label": 0},
            ]
        },
    )
    assert again.status_code == 200, again.text
    assert again.json() == {"labelled": 1, "unknown": [missing]}
    logged = ml.get(f"/v1/ml/models/{model}/predictions", params={"limit": 100}).json()["items"]
    assert {p["id"]: p["label"] for p in logged}[ids[0]] == flipped

    # A label that is no class of this model is a 422 naming the item; nothing is stored.
    bad = ml.post(
        feedback,
        json={
            "items": [
                {"prediction_id": ids[1], "label": 1 - truth[1]},
                {"prediction_id": ids[2], "label": "malignant"},
            ]
        },
    )
    assert bad.status_code == 422, bad.text
    assert bad.headers["content-type"].startswith(PROBLEM)
    problem = bad.json()
    assert [e["pointer"] for e in problem["errors"]] == ["/body/items/1/label"]
    assert "whole numbers" in problem["errors"][0]["message"]
    logged = ml.get(f"/v1/ml/models/{model}/predictions", params={"limit": 100}).json()["items"]
    assert {p["id"]: p["label"] for p in logged}[ids[1]] == truth[1]

    # Another tenant cannot see this model, let alone label its predictions.
    stranger = ml_stack.create_key("admin", tenant=f"other-{uuid.uuid4().hex[:6]}")
    with ml_stack.client(stranger) as other:
        refused = other.post(feedback, json={"items": [{"prediction_id": ids[3], "label": 0}]})
    assert refused.status_code == 404
    assert refused.headers["content-type"].startswith(PROBLEM)


def test_malformed_feedback_is_a_problem(ml: httpx.Client) -> None:
    unknown_model = ml.post(
        f"/v1/ml/models/no-such-{uuid.uuid4().hex[:6]}/feedback",
        json={"items": [{"prediction_id": "x", "label": 1}]},
    )
    assert unknown_model.status_code == 404
    assert unknown_model.headers["content-type"].startswith(PROBLEM)
    for body in (
        {"items": []},
        {"items": [{"prediction_id": "x"}]},
        {"items": [{"prediction_id": "x", "label": 1, "extra": 2}]},
        {"items": [{"prediction_id": "x", "label": 1}] * 1001},
    ):
        response = ml.post("/v1/ml/models/whatever/feedback", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
