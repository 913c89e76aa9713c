"""Every kind of model trained through the API and a real ``ml`` worker, judged on quality.

Data: scikit-learn's bundled breast cancer and diabetes sets, a seasonal
series, a small topic-labelled text set and points with planted outliers
(see tests/mldata.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aia_workers.ml.budget import grace_seconds
from tests import mldata
from tests.support import Stack, sse_events, wait_for, wait_status

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def ml(ml_stack: Stack) -> Iterator[httpx.Client]:
    with ml_stack.client(timeout=60) as client:
        yield client


def _upload(client: httpx.Client, csv: bytes, name: str = "data") -> dict[str, Any]:
    response = client.post(
        "/v1/ml/datasets", params={"name": name}, content=csv, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _experiment(client: httpx.Client, dataset_id: str, task: str, **fields: Any) -> dict[str, Any]:
    body = {"name": f"{task}-{uuid.uuid4().hex[:8]}", "task": task, "dataset_id": dataset_id}
    response = client.post("/v1/ml/experiments", json={**body, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _run(client: httpx.Client, experiment: dict[str, Any], timeout: float = 120, **body: Any):
    response = client.post(f"{experiment['links']['runs']}", json=body)
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["task"]["queue"] == "ml"
    task = wait_status(client, run["task_id"], {"succeeded", "failed"}, timeout=timeout)
    return run, task


def _train(client: httpx.Client, csv: bytes, task: str, **fields: Any) -> dict[str, Any]:
    """Upload, create, run; the registered version."""
    dataset = _upload(client, csv, task)
    experiment = _experiment(client, dataset["id"], task, **fields)
    _, done = _run(client, experiment)
    assert done["status"] == "succeeded", done["error"]
    result = done["result"]
    version = client.get(result["links"]["version"])
    assert version.status_code == 200, version.text
    return version.json()  # type: ignore[no-any-return]


def _predict(client: httpx.Client, model: str, rows: list[dict[str, Any]], **which: Any):
    response = client.post(f"/v1/ml/models/{model}/predict", json={"rows": rows, **which})
    assert response.status_code == 202, response.text
    return wait_status(client, response.json()["id"], {"succeeded", "failed"}, timeout=60)


# -- quality, kind by kind --------------------------------------------------------------


def test_classification_automl_through_the_api(ml: httpx.Client) -> None:
    frame = mldata.breast_cancer()
    budget = 10
    dataset = _upload(ml, mldata.to_csv(frame), "breast-cancer")
    experiment = _experiment(
        ml, dataset["id"], "classification", target="target", time_budget_seconds=budget
    )
    response = ml.post(experiment["links"]["runs"], json={"seed": 1})
    assert response.status_code == 202, response.text
    run = response.json()
    # Progress per trial, streamed as the search goes.
    events = list(sse_events(ml, run["task"]["links"]["events"], timeout=120))
    assert events[-1]["event"] == "succeeded", events[-1]
    trials = [e for e in events if e["event"] == "progress"]
    assert len(trials) >= 2
    version = ml.get(events[-1]["data"]["data"]["result"]["links"]["version"]).json()

    assert version["metrics"]["accuracy"] >= 0.93
    assert {"accuracy", "f1", "roc_auc"} <= set(version["metrics"])
    board = version["leaderboard"]
    assert len(board) >= 2
    assert {"estimator", "params", "score", "fit_seconds"} <= set(board[0])
    # The hard stop a grace period past the budget is what bounds a run; a
    # tighter figure would measure the machine's load, not the search.
    assert version["details"]["elapsed_seconds"] <= budget + grace_seconds(budget) + 1
    assert version["signature"][0] == {"name": "mean_radius", "kind": "numeric"}
    assert len(version["artifact"]["sha256"]) == 64
    assert version["dataset_id"] == dataset["id"]
    assert version["training_task_id"] == run["task_id"]
    assert version["trained_by"].startswith("key:")

    run_view = ml.get(run["links"]["self"]).json()
    assert run_view["status"] == "succeeded"
    assert run_view["model_version"] == version["version"]

    rows = frame.drop(columns=["target"]).head(20).to_dict(orient="records")
    done = _predict(ml, version["model_name"], rows)
    assert done["status"] == "succeeded", done["error"]
    predictions = done["result"]["predictions"]
    assert len(predictions) == 20
    hits = sum(
        p["prediction"] == t for p, t in zip(predictions, frame["target"].head(20), strict=True)
    )
    assert hits >= 18
    assert done["result"]["model_cache"] == "miss"
    # The worker keeps the model loaded: the next call skips the load.
    again = _predict(ml, version["model_name"], rows[:1])
    assert again["result"]["model_cache"] == "hit"
    [repeat] = again["result"]["predictions"]
    assert repeat["prediction"] == predictions[0]["prediction"]
    assert repeat["probabilities"] == pytest.approx(predictions[0]["probabilities"])
    assert set(predictions[0]["probabilities"]) == {"0", "1"}
    assert abs(sum(predictions[0]["probabilities"].values()) - 1) < 1e-6
    logged = ml.get(f"/v1/ml/models/{version['model_name']}/predictions").json()["items"]
    assert len(logged) == 21
    assert logged[0]["version"] == version["version"]


def test_regression_on_diabetes(ml: httpx.Client) -> None:
    # A small, noisy set: one 20 % holdout swings R² by ±0.1, so average three seeds.
    dataset = _upload(ml, mldata.to_csv(mldata.diabetes()), "diabetes")
    experiment = _experiment(
        ml,
        dataset["id"],
        "regression",
        target="target",
        time_budget_seconds=8,
        options={"max_trials": 8},
    )
    versions = []
    for seed in (0, 1, 2):
        _, done = _run(ml, experiment, seed=seed)
        assert done["status"] == "succeeded", done["error"]
        versions.append(ml.get(done["result"]["links"]["version"]).json())
    r2 = [v["metrics"]["r2"] for v in versions]
    assert sum(r2) / len(r2) >= 0.35, r2
    assert all(v["metrics"]["rmse"] > v["metrics"]["mae"] > 0 for v in versions)


def test_mlp_is_one_of_the_estimators(ml: httpx.Client) -> None:
    version = _train(
        ml,
        mldata.to_csv(mldata.breast_cancer()),
        "classification",
        target="target",
        time_budget_seconds=30,
        options={"estimator": "mlp"},
    )
    assert version["estimator"] == "mlp"
    assert version["metrics"]["accuracy"] >= 0.93


def test_forecasting_beats_seasonal_naive(ml: httpx.Client) -> None:
    version = _train(
        ml,
        mldata.to_csv(mldata.seasonal_series()),
        "forecasting",
        target="sales",
        time_budget_seconds=30,
        options={"horizon": 6},
    )
    metrics = version["metrics"]
    assert metrics["mase"] < metrics["baseline_mase"]
    assert {"mape", "smape", "mase"} <= set(metrics)
    done = _predict(ml, version["model_name"], [{}] * 6)
    assert done["status"] == "succeeded", done["error"]
    steps = done["result"]["predictions"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    for s in steps:
        assert s["lower_95"] <= s["lower_80"] <= s["forecast"] <= s["upper_80"] <= s["upper_95"]


def test_text_classification(ml: httpx.Client) -> None:
    version = _train(
        ml,
        mldata.to_csv(mldata.topic_texts()),
        "text_classification",
        target="topic",
        time_budget_seconds=20,
    )
    assert version["metrics"]["accuracy"] >= 0.85
    done = _predict(
        ml,
        version["model_name"],
        [
            {"text": "The goalkeeper saved a penalty and the team won the match."},
            {"text": "Bake the bread and season the soup with garlic."},
            {"text": "The bank raised rates and the shares dropped."},
        ],
    )
    assert done["status"] == "succeeded", done["error"]
    labels = [p["prediction"] for p in done["result"]["predictions"]]
    assert labels == ["sports", "cooking", "finance"]


def test_sentiment_with_vader(ml: httpx.Client) -> None:
    reviews = mldata.pd.DataFrame(
        {
            "review": [
                "I love this, it is wonderful and works great!",
                "Absolutely fantastic service, very happy.",
                "This is terrible, I hate it, worst purchase ever.",
                "Awful quality and the support was rude.",
            ]
        }
    )
    version = _train(ml, mldata.to_csv(reviews), "sentiment", time_budget_seconds=10)
    done = _predict(
        ml,
        version["model_name"],
        [
            {"review": "What a great, beautiful day. I am so happy!"},
            {"review": "This was a horrible, painful and sad experience."},
        ],
    )
    assert done["status"] == "succeeded", done["error"]
    first, second = done["result"]["predictions"]
    assert first["prediction"] == "positive"
    assert first["compound"] > 0.5
    assert second["prediction"] == "negative"
    assert second["compound"] < -0.5


def test_anomaly_detection_finds_planted_outliers(ml: httpx.Client) -> None:
    frame = mldata.planted_outliers()
    version = _train(
        ml,
        mldata.to_csv(frame),
        "anomaly_detection",
        target="planted",
        time_budget_seconds=20,
        options={"contamination": 0.03},
    )
    assert version["metrics"]["recall"] >= 0.9
    far, near = {"a": 9, "b": -9, "c": 8, "d": 9}, {"a": 0.1, "b": -0.2, "c": 0, "d": 0.3}
    done = _predict(ml, version["model_name"], [far, near])
    assert done["status"] == "succeeded", done["error"]
    outlier, inlier = done["result"]["predictions"]
    assert outlier["anomaly"] is True
    assert inlier["anomaly"] is False
    assert outlier["score"] > inlier["score"]


# -- the registry -----------------------------------------------------------------------


def test_aliases_history_and_rollback(ml: httpx.Client) -> None:
    dataset = _upload(ml, mldata.to_csv(mldata.diabetes()), "diabetes")
    experiment = _experiment(
        ml,
        dataset["id"],
        "regression",
        target="target",
        time_budget_seconds=5,
        options={"estimator": "ridge"},
    )
    hook = ml.post(
        "/v1/webhooks",
        json={
            "url": "https://hooks.example.com/models",
            "events": ["model.version_created", "model.alias_changed"],
        },
    ).json()
    for seed in (0, 1):
        _, done = _run(ml, experiment, seed=seed)
        assert done["status"] == "succeeded", done["error"]
    name = experiment["model_name"]
    base = f"/v1/ml/models/{name}"
    model = ml.get(base).json()
    assert [v["version"] for v in model["versions"]] == [2, 1]
    assert model["aliases"] == {}

    rows = mldata.diabetes().drop(columns=["target"]).head(2).to_dict(orient="records")
    # With no production alias the latest version serves.
    assert _predict(ml, name, rows)["result"]["version"] == 2

    moved = ml.post(f"{base}/aliases/production", json={"version": 1, "reason": "first"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["change"]["from_version"] is None
    ml.post(f"{base}/aliases/production", json={"version": 2}).raise_for_status()
    assert _predict(ml, name, rows)["result"]["version"] == 2
    assert _predict(ml, name, rows, alias="production")["result"]["version"] == 2
    assert _predict(ml, name, rows, version=1)["result"]["version"] == 1

    rolled = ml.post(f"{base}/aliases/production/rollback")
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"] == 1
    assert _predict(ml, name, rows)["result"]["version"] == 1

    history = ml.get(base).json()["alias_history"]
    assert [(h["from_version"], h["to_version"]) for h in history] == [
        (2, 1),
        (1, 2),
        (None, 1),
    ]
    assert all(h["changed_by"].startswith("key:") for h in history)
    # Each version and each move went to the webhook outbox with the change that made it.
    created = ml.get(hook["links"]["messages"], params={"event_type": "model.version_created"})
    assert [m["payload"]["version"] for m in created.json()["items"]] == [2, 1]
    sent = ml.get(hook["links"]["messages"], params={"event_type": "model.alias_changed"})
    moves = [
        (m["payload"]["from_version"], m["payload"]["to_version"]) for m in sent.json()["items"]
    ]
    assert moves == [(2, 1), (1, 2), (None, 1)]
    assert ml.get(f"{base}/versions/1").json()["aliases"] == ["production"]

    missing = ml.post(f"{base}/aliases/staging", json={"version": 9})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    listed = ml.get("/v1/ml/models", params={"limit": 200}).json()["items"]
    assert name in [m["name"] for m in listed]


def test_a_tampered_artifact_is_refused(ml_stack: Stack, ml: httpx.Client) -> None:
    version = _train(
        ml,
        mldata.to_csv(mldata.diabetes()),
        "regression",
        target="target",
        time_budget_seconds=5,
        options={"estimator": "ridge"},
    )
    artifact = Path(ml_stack.env["AIA_DATA_HOME"]) / "artifacts" / version["artifact"]["path"]
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    rows = mldata.diabetes().drop(columns=["target"]).head(1).to_dict(orient="records")
    done = _predict(ml, version["model_name"], rows)
    assert done["status"] == "failed"
    assert "checksum" in done["error"]["message"]


def test_a_cancelled_run_says_so(ml: httpx.Client) -> None:
    dataset = _upload(ml, mldata.to_csv(mldata.breast_cancer()), "breast-cancer")
    experiment = _experiment(
        ml, dataset["id"], "classification", target="target", time_budget_seconds=120
    )
    run = ml.post(experiment["links"]["runs"]).json()
    wait_status(ml, run["task_id"], {"running"}, timeout=60)
    assert ml.post(f"/v1/tasks/{run['task_id']}/cancel").status_code == 202
    wait_status(ml, run["task_id"], {"cancelled"}, timeout=30)
    view = wait_for(
        lambda: (v := ml.get(run["links"]["self"]).json())["status"] == "cancelled" and v,
        30,
        what="the run to show cancelled",
    )
    assert view["model_version"] is None


# -- bad input --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(ml: httpx.Client) -> dict[str, Any]:
    rows = [
        {"size": i, "colour": ["red", "blue"][i % 2], "constant": 1, "label": i % 2}
        for i in range(40)
    ]
    response = ml.post("/v1/ml/datasets", json={"name": "small", "rows": rows})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("fields", "column", "says"),
    [
        ({"task": "classification", "target": "nope"}, "nope", "no column"),
        ({"task": "regression", "target": "colour"}, "colour", "needs numbers"),
        ({"task": "classification", "target": "constant"}, "constant", "single value"),
        ({"task": "classification", "target": "label", "features": ["gone"]}, "gone", "no column"),
    ],
)
def test_an_experiment_that_cannot_train_is_a_422_naming_the_column(
    ml: httpx.Client, small: dict[str, Any], fields: dict[str, Any], column: str, says: str
) -> None:
    body = {"name": f"bad-{uuid.uuid4().hex[:8]}", "dataset_id": small["id"], **fields}
    response = ml.post("/v1/ml/experiments", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["column"] == column
    assert says in problem["detail"]


def test_too_few_rows_is_a_422(ml: httpx.Client) -> None:
    rows = [{"x": i, "y": i % 2} for i in range(8)]
    dataset = ml.post("/v1/ml/datasets", json={"name": "tiny", "rows": rows}).json()
    body = {"name": "tiny", "task": "classification", "dataset_id": dataset["id"], "target": "y"}
    response = ml.post("/v1/ml/experiments", json=body)
    assert response.status_code == 422
    assert "at least" in response.json()["detail"]


def test_other_bad_experiments(ml: httpx.Client, small: dict[str, Any]) -> None:
    base = {"dataset_id": small["id"], "target": "label", "task": "classification"}
    wrong_metric = ml.post("/v1/ml/experiments", json={**base, "name": "m", "metric": "r2"})
    assert wrong_metric.status_code == 422
    assert "r2" in wrong_metric.text
    no_dataset = ml.post(
        "/v1/ml/experiments", json={**base, "name": "d", "dataset_id": str(uuid.uuid4())}
    )
    assert no_dataset.status_code == 422
    assert no_dataset.json()["errors"][0]["pointer"] == "/dataset_id"
    over_budget = ml.post(
        "/v1/ml/experiments", json={**base, "name": "b", "time_budget_seconds": 99999}
    )
    assert over_budget.status_code == 422
    name = f"dup-{uuid.uuid4().hex[:8]}"
    assert ml.post("/v1/ml/experiments", json={**base, "name": name}).status_code == 201
    assert ml.post("/v1/ml/experiments", json={**base, "name": name}).status_code == 409


def test_experiments_list_newest_first_a_page_at_a_time(
    ml: httpx.Client, small: dict[str, Any]
) -> None:
    made = [_experiment(ml, small["id"], "classification", target="label")["id"] for _ in range(3)]
    first = ml.get("/v1/ml/experiments", params={"limit": 2}).json()
    assert [e["id"] for e in first["items"]] == made[:0:-1]
    second = ml.get(first["links"]["next"]).json()
    assert second["items"][0]["id"] == made[0]
    assert ml.get("/v1/ml/experiments", params={"cursor": "not-ours"}).status_code == 400
    runs = ml.get(f"/v1/ml/experiments/{made[0]}/runs").json()
    assert runs == {
        "items": [],
        "next_cursor": None,
        "links": {"self": f"/v1/ml/experiments/{made[0]}/runs"},
    }
    assert ml.get(f"/v1/ml/experiments/{uuid.uuid4()}/runs").status_code == 404


def test_an_experiment_changes_its_current_data_and_the_next_run_trains_on_it(
    ml: httpx.Client, small: dict[str, Any]
) -> None:
    experiment = _experiment(
        ml,
        small["id"],
        "classification",
        target="label",
        time_budget_seconds=3,
        options={"estimator": "logistic_regression"},
    )
    rows = [{"size": -i, "colour": "red", "constant": 2, "label": i % 2} for i in range(30)]
    fresh = ml.post("/v1/ml/datasets", json={"name": "fresh", "rows": rows}).json()
    changed = ml.patch(experiment["links"]["self"], json={"dataset_id": fresh["id"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["dataset_id"] == fresh["id"]
    assert ml.get(experiment["links"]["self"]).json()["dataset_id"] == fresh["id"]
    run, done = _run(ml, experiment)
    assert done["status"] == "succeeded", done["error"]
    version = ml.get(done["result"]["links"]["version"]).json()
    assert version["dataset_id"] == fresh["id"]
    listed = ml.get(experiment["links"]["runs"]).json()["items"]
    assert [(r["id"], r["status"]) for r in listed] == [(run["id"], "succeeded")]

    unfit = [{"size": i, "colour": "red"} for i in range(30)]
    no_target = ml.post("/v1/ml/datasets", json={"name": "unfit", "rows": unfit}).json()
    refused = ml.patch(experiment["links"]["self"], json={"dataset_id": no_target["id"]})
    assert refused.status_code == 422
    assert refused.json()["column"] == "label"
    missing = ml.patch(experiment["links"]["self"], json={"dataset_id": str(uuid.uuid4())})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["pointer"] == "/dataset_id"
    assert ml.patch(experiment["links"]["self"], json={"name": "x"}).status_code == 422
    assert ml.get(experiment["links"]["self"]).json()["dataset_id"] == fresh["id"]
    gone = ml.patch(f"/v1/ml/experiments/{uuid.uuid4()}", json={"time_budget_seconds": 5})
    assert gone.status_code == 404


def test_prediction_rows_are_checked_against_the_signature(
    ml: httpx.Client, small: dict[str, Any]
) -> None:
    experiment = _experiment(
        ml,
        small["id"],
        "classification",
        target="label",
        features=["size", "colour"],
        time_budget_seconds=5,
        options={"estimator": "logistic_regression"},
    )
    _, done = _run(ml, experiment)
    assert done["status"] == "succeeded", done["error"]
    url = f"/v1/ml/models/{experiment['model_name']}/predict"
    missing = ml.post(url, json={"rows": [{"size": 1, "colour": "red"}, {"size": 2}]})
    assert missing.status_code == 422, missing.text
    assert missing.json()["column"] == "colour"
    assert missing.json()["row"] == 2
    wrong = ml.post(url, json={"rows": [{"size": "big", "colour": "red"}]})
    assert wrong.status_code == 422
    assert wrong.json()["column"] == "size"
    both = ml.post(url, json={"rows": [{"size": 1, "colour": "red"}], "version": 1, "alias": "a"})
    assert both.status_code == 422
    unknown = ml.post("/v1/ml/models/nope/predict", json={"rows": [{"size": 1}]})
    assert unknown.status_code == 404
    ok = _predict(ml, experiment["model_name"], [{"size": 3, "colour": None}])
    assert ok["status"] == "succeeded", ok["error"]


def test_multipart_upload(ml: httpx.Client) -> None:
    csv = mldata.to_csv(mldata.diabetes().head(50))
    response = ml.post(
        "/v1/ml/datasets", files={"file": ("diabetes.csv", csv, "text/csv")}, data={"name": "d50"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "d50"
    assert response.json()["rows"] == 50
    no_file = ml.post("/v1/ml/datasets", files={"other": ("x.csv", csv, "text/csv")})
    assert no_file.status_code == 422
