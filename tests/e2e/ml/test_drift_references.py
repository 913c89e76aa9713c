"""A model trained through the API and a real ``ml`` worker has its drift reference beside it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from aia_workers.db.drift import DriftReference
from aia_workers.db.ml import ModelVersion
from aia_workers.drift.profile import CategoricalProfile, NumericProfile
from aia_workers.drift.references import load_reference
from aia_workers.ml.artifacts import ArtifactSigner, LocalArtifactStore
from tests import mldata
from tests.support import Stack, wait_status

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ml(ml_stack: Stack) -> Iterator[httpx.Client]:
    with ml_stack.client(timeout=60) as client:
        yield client


def _train(client: httpx.Client, csv: bytes, task: str, **fields: Any) -> dict[str, Any]:
    dataset = client.post(
        "/v1/ml/datasets", params={"name": task}, content=csv, headers={"content-type": "text/csv"}
    )
    assert dataset.status_code == 201, dataset.text
    body = {"name": f"ref-{uuid.uuid4().hex[:8]}", "task": task, "dataset_id": dataset.json()["id"]}
    experiment = client.post("/v1/ml/experiments", json={**body, **fields})
    assert experiment.status_code == 201, experiment.text
    run = client.post(experiment.json()["links"]["runs"], json={"seed": 3})
    assert run.status_code == 202, run.text
    done = wait_status(client, run.json()["task_id"], {"succeeded", "failed"}, timeout=120)
    assert done["status"] == "succeeded", done["error"]
    return client.get(done["result"]["links"]["version"]).json()  # type: ignore[no-any-return]


def _reference(stack: Stack, model: str) -> tuple[DriftReference, Any, Any]:
    engine = create_engine(stack.env["AIA_DATABASE_URL"])
    store = LocalArtifactStore(Path(stack.env["AIA_DATA_HOME"]) / "artifacts")
    signer = ArtifactSigner(stack.env["AIA_ARTIFACT_KEY"])
    try:
        with Session(engine) as session:
            version = session.scalars(
                select(ModelVersion).where(
                    ModelVersion.tenant_id == "default", ModelVersion.model_name == model
                )
            ).one()
            row = session.scalars(
                select(DriftReference).where(DriftReference.model_version_id == version.id)
            ).one()
            profile, sample = load_reference(session, "default", version.id, store, signer)
            # Beside the model file.
            assert row.sample_key.rsplit("/", 1)[0] == version.artifact_key.rsplit("/", 1)[0]
            return row, profile, sample
    finally:
        engine.dispose()


def test_a_classifier_keeps_a_profile_and_sample_of_its_training_data(
    ml_stack: Stack, ml: httpx.Client
) -> None:
    frame = mldata.breast_cancer()
    version = _train(
        ml,
        mldata.to_csv(frame),
        "classification",
        target="target",
        time_budget_seconds=5,
        options={"estimator": "logistic_regression"},
    )
    row, profile, sample = _reference(ml_stack, version["model_name"])
    features = [c["name"] for c in version["signature"]]
    assert list(profile.features) == features
    radius = profile.features["mean_radius"]
    assert isinstance(radius, NumericProfile)
    assert radius.count == len(frame) == row.rows == profile.rows
    assert radius.quantiles[0] == pytest.approx(frame["mean_radius"].min())
    assert radius.quantiles[-1] == pytest.approx(frame["mean_radius"].max())
    prediction = profile.predictions["prediction"]
    assert isinstance(prediction, CategoricalProfile)
    assert set(prediction.categories) == {"0", "1"}
    assert {"probabilities.0", "probabilities.1"} <= set(profile.predictions)
    # The whole table is smaller than the sample's bound, so it is all there.
    assert len(sample) == row.sample_rows == len(frame)
    assert list(sample.features.columns) == features
    assert sorted(sample.features["mean_radius"]) == sorted(frame["mean_radius"])


def test_a_forecaster_keeps_its_target_series(ml_stack: Stack, ml: httpx.Client) -> None:
    series = mldata.seasonal_series()
    version = _train(
        ml,
        mldata.to_csv(series),
        "forecasting",
        target="sales",
        time_budget_seconds=10,
        options={"horizon": 3, "estimator": "ets"},
    )
    _, profile, sample = _reference(ml_stack, version["model_name"])
    assert list(profile.features) == ["sales"]
    assert profile.predictions == {}
    assert sorted(sample.features["sales"]) == pytest.approx(sorted(series["sales"]))
