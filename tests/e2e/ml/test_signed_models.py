"""Model files are signed: a worker refuses a version whose row someone with write access to the
database pointed at a file of their choosing, and versions from before signatures are signed by
``aia secrets sign-models``."""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from aia_workers.ml.artifacts import LocalArtifactStore
from tests import mldata
from tests.support import Stack, wait_status

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ml(ml_stack: Stack) -> Iterator[httpx.Client]:
    with ml_stack.client(timeout=60) as client:
        yield client


def _train(client: httpx.Client) -> dict[str, Any]:
    dataset = client.post(
        "/v1/ml/datasets",
        params={"name": "diabetes"},
        content=mldata.to_csv(mldata.diabetes()),
        headers={"content-type": "text/csv"},
    )
    assert dataset.status_code == 201, dataset.text
    experiment = client.post(
        "/v1/ml/experiments",
        json={
            "name": f"signed-{uuid.uuid4().hex[:8]}",
            "task": "regression",
            "dataset_id": dataset.json()["id"],
            "target": "target",
            "time_budget_seconds": 5,
            "options": {"estimator": "ridge"},
        },
    ).json()
    run = client.post(experiment["links"]["runs"], json={})
    assert run.status_code == 202, run.text
    done = wait_status(client, run.json()["task_id"], {"succeeded", "failed"}, timeout=120)
    assert done["status"] == "succeeded", done["error"]
    return client.get(done["result"]["links"]["version"]).json()  # type: ignore[no-any-return]


def _predict(client: httpx.Client, model: str) -> dict[str, Any]:
    rows = mldata.diabetes().drop(columns=["target"]).head(1).to_dict(orient="records")
    response = client.post(f"/v1/ml/models/{model}/predict", json={"rows": rows, "version": 1})
    assert response.status_code == 202, response.text
    return wait_status(client, response.json()["id"], {"succeeded", "failed"}, timeout=60)


def _execute(stack: Stack, sql: str, **params: Any) -> None:
    engine = create_engine(stack.env["AIA_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


class _Payload:
    """A pickle that, once loaded, leaves a directory behind: proof that it ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_a_row_pointed_at_another_file_is_refused_before_unpickling(
    ml_stack: Stack, ml: httpx.Client, tmp_path: Path
) -> None:
    version = _train(ml)
    name = version["model_name"]
    assert _predict(ml, name)["status"] == "succeeded"

    # A file of the attacker's choosing in the store (any upload lands there),
    # and the version's row rewritten to name it, with its true checksum.
    marker = tmp_path / "the-pickle-ran"
    store = LocalArtifactStore(Path(ml_stack.env["AIA_DATA_HOME"]) / "artifacts")
    planted = f"default/datasets/{uuid.uuid4()}.csv"
    digest = store.put(planted, pickle.dumps(_Payload(marker)))
    rewrite = (
        "UPDATE model_versions SET artifact_key = :key, artifact_sha256 = :sha "
        "WHERE tenant_id = 'default' AND model_name = :name AND version = 1"
    )
    _execute(ml_stack, rewrite, key=planted, sha=digest, name=name)
    try:
        done = _predict(ml, name)
        assert done["status"] == "failed"
        assert "signature" in done["error"]["message"]
        assert not marker.exists()
    finally:
        path = version["artifact"]
        _execute(ml_stack, rewrite, key=path["path"], sha=path["sha256"], name=name)
    assert _predict(ml, name)["status"] == "succeeded"


def test_a_version_from_before_signatures_is_refused_until_signed(
    ml_stack: Stack, ml: httpx.Client
) -> None:
    name = _train(ml)["model_name"]
    _execute(
        ml_stack,
        "UPDATE model_versions SET artifact_mac = NULL "
        "WHERE tenant_id = 'default' AND model_name = :name",
        name=name,
    )
    refused = _predict(ml, name)
    assert refused["status"] == "failed"
    assert "aia secrets sign-models" in refused["error"]["message"]

    out = ml_stack.aia("secrets", "sign-models")
    assert "1 model versions signed" in out
    assert _predict(ml, name)["status"] == "succeeded"
