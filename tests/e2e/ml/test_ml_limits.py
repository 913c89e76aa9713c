"""Training within bounds, through the API and a real ``ml`` worker.

Options out of bounds are refused when the experiment or run is made; a run
whose options would take far longer than its budget stops at the budget with
the model it has; a fit that cannot be interrupted is stopped and fails; a run
that needs more memory than an ml task may use fails on its own, and the same
worker process goes on to the next task. The ml_stack's worker caps each task
at AIA_ML_TASK_MEMORY_MB = 2048 (tests/conftest.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest
from sklearn.datasets import make_classification

from tests import mldata
from tests.support import Stack, wait_status

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def ml(ml_stack: Stack) -> Iterator[httpx.Client]:
    with ml_stack.client(timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def cancer(ml: httpx.Client) -> dict[str, Any]:
    return _upload(ml, mldata.to_csv(mldata.breast_cancer()), "breast-cancer")


def _upload(client: httpx.Client, csv: bytes, name: str) -> dict[str, Any]:
    response = client.post(
        "/v1/ml/datasets", params={"name": name}, content=csv, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _body(dataset: dict[str, Any], task: str = "classification", **fields: Any) -> dict[str, Any]:
    name = f"{task}-{uuid.uuid4().hex[:8]}"
    return {"name": name, "task": task, "dataset_id": dataset["id"], "target": "target", **fields}


def _experiment(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/ml/experiments", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _train(client: httpx.Client, experiment: dict[str, Any], timeout: float) -> dict[str, Any]:
    response = client.post(experiment["links"]["runs"], json={})
    assert response.status_code == 202, response.text
    return wait_status(client, response.json()["task_id"], {"succeeded", "failed"}, timeout)


def _pool_processes(stack: Stack) -> set[int]:
    [worker] = [p for p in stack.processes if p.name == "worker-ml"]
    return {child.pid for child in psutil.Process(worker.popen.pid).children()}


# -- refused up front ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "parameter", "says"),
    [
        (
            {"options": {"estimator": "mlp", "params": {"hidden_layers": [40_000, 40_000]}}},
            "options.params.hidden_layers.0",
            "less than or equal to 1024 (the AIA_ML_MAX_HIDDEN_UNITS setting)",
        ),
        (
            {"options": {"estimator": "mlp", "params": {"max_epochs": 1_000_000_000}}},
            "options.params.max_epochs",
            "less than or equal to 1000 (the AIA_ML_MAX_EPOCHS setting)",
        ),
        (
            {"options": {"estimator": "random_forest", "params": {"n_jobs": -1}}},
            "options.params.n_jobs",
            "the worker runs each fit on one thread",
        ),
        (
            {"options": {"estimator": "random_forest", "params": {"n_estimators": 10**6}}},
            "options.params.n_estimators",
            "less than or equal to 1000 (the AIA_ML_MAX_TREES setting)",
        ),
        (
            {"options": {"max_trials": 10**9}},
            "options.max_trials",
            "less than or equal to 1000",
        ),
        (
            {"options": {"n_jobs": 64}},
            "options.n_jobs",
            "the worker runs each fit on one thread",
        ),
        (
            {"time_budget_seconds": 86_400},
            "time_budget_seconds",
            "less than or equal to 3600 (the AIA_ML_MAX_TIME_BUDGET_SECONDS setting)",
        ),
    ],
)
def test_an_experiment_out_of_bounds_is_a_422_naming_the_parameter_and_bound(
    ml: httpx.Client, cancer: dict[str, Any], fields: dict[str, Any], parameter: str, says: str
) -> None:
    body = _body(cancer, **fields)
    response = ml.post("/v1/ml/experiments", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:aia:problem:invalid-options"
    assert problem["parameter"] == parameter
    assert says in problem["detail"]
    assert problem["errors"][0]["pointer"] == "/" + parameter.replace(".", "/")
    # Nothing was made: the name is still free.
    within = {**body, "options": {}, "time_budget_seconds": 5}
    assert ml.post("/v1/ml/experiments", json=within).status_code == 201


def test_other_kinds_check_their_own_options(ml: httpx.Client) -> None:
    series = _upload(ml, mldata.to_csv(mldata.seasonal_series()), "series")
    body = _body(series, "forecasting", target="sales", options={"horizon": 5000})
    response = ml.post("/v1/ml/experiments", json=body)
    assert response.status_code == 422
    assert response.json()["parameter"] == "options.horizon"
    body["options"] = {"contamination": 0.1}  # an anomaly detector's option
    response = ml.post("/v1/ml/experiments", json=body)
    assert response.status_code == 422
    assert "are: backtest_folds, estimator, horizon, season_length" in response.json()["detail"]


def test_a_run_out_of_bounds_is_a_422_before_anything_is_queued(
    ml: httpx.Client, cancer: dict[str, Any]
) -> None:
    experiment = _experiment(ml, _body(cancer, options={"estimator": "random_forest"}))
    runs = experiment["links"]["runs"]
    response = ml.post(runs, json={"options": {"params": {"n_estimators": 5000, "n_jobs": -1}}})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["parameter"] == "options.params.n_estimators"
    assert [e["pointer"] for e in problem["errors"]] == [
        "/options/params/n_estimators",
        "/options/params/n_jobs",
    ]
    assert ml.get(runs).json()["items"] == []


# -- the time budget holds for the final fit ----------------------------------------------


def test_a_run_whose_options_would_overrun_stops_at_its_budget(
    ml: httpx.Client, cancer: dict[str, Any]
) -> None:
    # One MLP of a thousand epochs, one row per step: minutes of training.
    params = {
        "hidden_layers": [1024, 1024],
        "max_epochs": 1000,
        "patience": 1000,
        "batch_size": 1,
    }
    budget = 3
    body = _body(
        cancer,
        time_budget_seconds=budget,
        options={"estimator": "mlp", "params": params},
    )
    done = _train(ml, _experiment(ml, body), timeout=60)
    assert done["status"] == "succeeded", done["error"]
    version = ml.get(done["result"]["links"]["version"]).json()
    cut = version["details"]["deadline_cut"]
    assert cut["parameter"] == "max_epochs"
    assert 0 <= cut["reached"] < 1000  # whole epochs; training may stop within the first
    assert version["details"]["stopped"] == "budget"
    # What training there was time for serves (its quality is whatever a few seconds buy).
    rows = mldata.breast_cancer().drop(columns=["target"]).head(2).to_dict(orient="records")
    response = ml.post(f"/v1/ml/models/{version['model_name']}/predict", json={"rows": rows})
    assert response.status_code == 202, response.text
    predicted = wait_status(ml, response.json()["id"], {"succeeded", "failed"}, timeout=60)
    assert predicted["status"] == "succeeded", predicted["error"]
    assert len(predicted["result"]["predictions"]) == 2


def test_a_fit_that_cannot_be_interrupted_is_stopped_and_the_worker_goes_on(
    ml_stack: Stack, ml: httpx.Client
) -> None:
    # A kernel SVM at its largest C on 24k noisy rows solves for minutes inside libsvm,
    # where no signal reaches it; with a one-second budget the worker kills the fit.
    x, y = make_classification(
        n_samples=30_000, n_features=20, n_informative=10, flip_y=0.2, random_state=0
    )
    frame = pd.DataFrame(x.round(4), columns=[f"x{i}" for i in range(20)]).assign(target=y)
    dataset = _upload(ml, mldata.to_csv(frame), "noisy")
    pool = _pool_processes(ml_stack)
    options = {"estimator": "svm", "params": {"C": 10_000, "gamma": 1.0}}
    body = _body(dataset, time_budget_seconds=1, options=options)
    done = _train(ml, _experiment(ml, body), timeout=90)

    assert done["status"] == "failed"
    assert done["error"]["type"] == "TrainingStopped"
    assert "past its time budget of 1 s" in done["error"]["message"]
    assert "cannot be interrupted" in done["error"]["message"]
    _the_worker_goes_on(ml_stack, ml, pool)


# -- the memory cap ---------------------------------------------------------------------------


def test_a_run_past_the_memory_cap_fails_and_the_worker_goes_on(
    ml_stack: Stack, ml: httpx.Client
) -> None:
    # Twelve categorical columns of 2,000 values each one-hot encode to 24,000
    # columns; the MLP densifies them: 32,000 training rows x 24,000 float32 is 3 GiB.
    rng = np.random.default_rng(0)
    rows = 40_000
    frame = pd.DataFrame(
        {f"c{i}": [f"v{v}" for v in rng.permutation(np.arange(rows) % 2000)] for i in range(12)}
    ).assign(target=rng.integers(0, 2, rows))
    dataset = _upload(ml, mldata.to_csv(frame), "wide")
    assert {c["kind"] for c in dataset["columns"] if c["name"] != "target"} == {"categorical"}
    pool = _pool_processes(ml_stack)
    body = _body(dataset, time_budget_seconds=120, options={"estimator": "mlp"})
    done = _train(ml, _experiment(ml, body), timeout=90)

    assert done["status"] == "failed"
    assert done["error"]["type"] == "TrainingOutOfMemory"
    assert "AIA_ML_TASK_MEMORY_MB = 2048 MiB" in done["error"]["message"]
    _the_worker_goes_on(ml_stack, ml, pool)


def _the_worker_goes_on(ml_stack: Stack, ml: httpx.Client, pool: set[int]) -> None:
    """The next run succeeds on the same pool process, and nothing was a dead letter."""
    diabetes = _upload(ml, mldata.to_csv(mldata.diabetes()), "diabetes")
    body = _body(diabetes, "regression", time_budget_seconds=5, options={"estimator": "ridge"})
    done = _train(ml, _experiment(ml, body), timeout=60)
    assert done["status"] == "succeeded", done["error"]
    assert _pool_processes(ml_stack) == pool
    assert ml.get("/v1/dead-letters").json()["items"] == []
