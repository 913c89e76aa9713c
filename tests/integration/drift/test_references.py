"""Drift references on SQLite and PostgreSQL: stored with a version, read back checked."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, exc, update
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.backbone.announcements import to_webhooks
from aia_workers.db.drift import DriftReference
from aia_workers.db.migrate import upgrade
from aia_workers.db.ml import Experiment, ModelVersion
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.drift.profile import Reference, build_reference
from aia_workers.drift.references import (
    add_reference,
    load_reference,
    put_sample,
    sample_key,
    sign_references,
)
from aia_workers.errors import NotFoundError
from aia_workers.ml.artifacts import (
    ArtifactSigner,
    IntegrityError,
    LocalArtifactStore,
    ModelFile,
    UnsignedArtifactError,
)
from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.registry import ModelRegistry
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration

SIGNER = ArtifactSigner("k" * 48)


@pytest.fixture
def sessions(database_url: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine: Engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def _version(sessions: sessionmaker[Session], tenant: str = "t1") -> tuple[str, str, str]:
    """A registered version: (experiment id, run id, version id)."""
    experiment_id, run_id, version_id = (str(uuid.uuid4()) for _ in range(3))
    now = datetime.now(UTC)
    with sessions.begin() as session:
        registry = ModelRegistry(session, tenant, to_webhooks)
        registry.add_experiment(
            Experiment(
                id=experiment_id,
                tenant_id=tenant,
                name="churn",
                model_name="churn",
                task="regression",
                dataset_id="d",
                target="y",
                features=["x", "c"],
                time_budget_seconds=10,
                options={},
                latest_version=0,
                created_at=now,
            )
        )
        registry.register(
            ModelVersion(
                id=version_id,
                tenant_id=tenant,
                model_name="churn",
                experiment_id=experiment_id,
                run_id=run_id,
                task="regression",
                estimator="ridge",
                params={},
                metrics={},
                leaderboard=[],
                details={},
                dataset_id="d",
                signature=[],
                artifact_key=f"{tenant}/models/{run_id}.pkl",
                artifact_sha256="0" * 64,
                artifact_mac="0" * 64,
                size_bytes=1,
                created_at=now,
            )
        )
    return experiment_id, run_id, version_id


def _reference(rows: int = 3_000) -> Reference:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=rows), "c": rng.choice(["a", "b", "c"], rows).astype(object)}
    )
    frame.loc[::7, "x"] = np.nan
    signature = [{"name": "x", "kind": "numeric"}, {"name": "c", "kind": "categorical"}]

    def predict(rows: pd.DataFrame) -> list[dict[str, float]]:
        return [{"prediction": 2 * x} for x in rows["x"].fillna(0)]

    return build_reference(frame, signature, MLTask.REGRESSION, predict, sample_rows=1_000, seed=1)


def _store(
    sessions: sessionmaker[Session], store: LocalArtifactStore, tenant: str = "t1"
) -> tuple[str, Reference, DriftReference]:
    experiment_id, run_id, version_id = _version(sessions, tenant)
    reference = _reference()
    sample = put_sample(
        store, SIGNER, tenant, sample_key(tenant, experiment_id, run_id), reference.sample
    )
    with sessions.begin() as session:
        row = add_reference(session, tenant, version_id, reference.profile, sample)
    return version_id, reference, row


def test_a_reference_is_stored_and_read_back(
    sessions: sessionmaker[Session], store: LocalArtifactStore
) -> None:
    version_id, reference, row = _store(sessions, store)
    assert (row.rows, row.sample_rows) == (3_000, 1_000)
    with sessions() as session:
        profile, sample = load_reference(session, "t1", version_id, store, SIGNER)
    assert profile == reference.profile
    pd.testing.assert_frame_equal(sample.features, reference.sample.features)
    pd.testing.assert_frame_equal(sample.predictions, reference.sample.predictions)
    assert sample.features["x"].isna().any()  # missing values come back missing
    # Another tenant's version is not found, nor is a version without a reference.
    with sessions() as session:
        with pytest.raises(NotFoundError):
            load_reference(session, "t2", version_id, store, SIGNER)
        with pytest.raises(NotFoundError):
            load_reference(session, "t1", _version(sessions, "t3")[2], store, SIGNER)


def test_a_changed_sample_file_is_refused(
    sessions: sessionmaker[Session], store: LocalArtifactStore, tmp_path: Path
) -> None:
    version_id, _, row = _store(sessions, store)
    path = tmp_path / "artifacts" / row.sample_key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with sessions() as session, pytest.raises(IntegrityError, match="checksum"):
        load_reference(session, "t1", version_id, store, SIGNER)


def test_a_row_pointed_at_another_file_is_refused(
    sessions: sessionmaker[Session], store: LocalArtifactStore
) -> None:
    version_id, _, _ = _store(sessions, store)
    # A file of someone's choosing, with its true checksum, named by the row.
    planted = "t1/datasets/planted.json.gz"
    digest = store.put(planted, b"not a sample")
    with sessions.begin() as session:
        session.execute(
            update(DriftReference)
            .where(DriftReference.model_version_id == version_id)
            .values(sample_key=planted, sample_sha256=digest)
        )
    with sessions() as session, pytest.raises(UnsignedArtifactError, match="signature"):
        load_reference(session, "t1", version_id, store, SIGNER)


def test_a_samples_signature_does_not_pass_for_a_model_files(
    sessions: sessionmaker[Session], store: LocalArtifactStore
) -> None:
    _, _, row = _store(sessions, store)
    # A model version's row pointed at the sample, with the sample's checksum and signature.
    model_file = ModelFile("t1", row.sample_key, row.sample_sha256, row.sample_mac)
    with pytest.raises(UnsignedArtifactError):
        SIGNER.verify(model_file)


def test_a_version_has_one_reference(
    sessions: sessionmaker[Session], store: LocalArtifactStore
) -> None:
    version_id, reference, _ = _store(sessions, store)
    sample = put_sample(store, SIGNER, "t1", "t1/models/again.json.gz", reference.sample)
    with pytest.raises(exc.IntegrityError), sessions.begin() as session:
        add_reference(session, "t1", version_id, reference.profile, sample)


def test_samples_are_signed_again_under_a_new_key(
    sessions: sessionmaker[Session], store: LocalArtifactStore, tmp_path: Path
) -> None:
    version_id, _, row = _store(sessions, store)
    changed_id, _, changed = _store(sessions, store, "t2")
    (tmp_path / "artifacts" / changed.sample_key).write_bytes(b"not the sample")
    new_key = ArtifactSigner("n" * 48)
    with sessions() as session, pytest.raises(UnsignedArtifactError):
        load_reference(session, "t1", version_id, store, new_key)

    report = sign_references(sessions, store, new_key)

    assert report.signed == 1
    assert list(report.refused) == [changed.id]
    with sessions() as session:
        profile, _ = load_reference(session, "t1", version_id, store, new_key)
        assert profile.rows == row.rows
        # The old key no longer vouches for it, and the changed file stays refused.
        with pytest.raises(UnsignedArtifactError):
            load_reference(session, "t1", version_id, store, SIGNER)
        with pytest.raises(UnsignedArtifactError):
            load_reference(session, "t2", changed_id, store, new_key)
