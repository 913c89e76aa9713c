"""Model versions signed on SQLite and PostgreSQL: registered signed, and versions from before
signatures signed by ``sign_versions`` only when their file still matches its checksum."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.migrate import upgrade
from aia_workers.db.ml import Experiment, ModelVersion
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.ml.artifacts import ArtifactSigner, LocalArtifactStore, ModelFile
from aia_workers.ml.registry import ModelRegistry
from aia_workers.ml.signing import sign_versions
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration

TENANT = "t1"
SIGNER = ArtifactSigner("s" * 48)


@pytest.fixture
def sessions(database_url: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine: Engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


def _version(
    sessions: sessionmaker[Session], store: LocalArtifactStore, data: bytes, mac: str | None
) -> tuple[str, str, str]:
    """A version of a new model whose file holds ``data``; its id, key and checksum."""
    experiment_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())
    key = f"{TENANT}/models/{experiment_id}/{run_id}.pkl"
    digest = store.put(key, data)
    name = f"m-{experiment_id[:8]}"
    version = ModelVersion(
        id=str(uuid.uuid4()),
        tenant_id=TENANT,
        model_name=name,
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
        artifact_key=key,
        artifact_sha256=digest,
        artifact_mac=mac,
        size_bytes=len(data),
        version=1,
        created_at=datetime.now(UTC),
    )
    with sessions.begin() as session:
        session.add(
            Experiment(
                id=experiment_id,
                tenant_id=TENANT,
                name=name,
                model_name=name,
                task="regression",
                dataset_id="d",
                target="y",
                features=[],
                time_budget_seconds=10,
                metric=None,
                options={},
                latest_version=1,
                created_at=datetime.now(UTC),
            )
        )
        session.add(version)
    return version.id, key, digest


def _mac(sessions: sessionmaker[Session], version_id: str) -> str | None:
    with sessions() as session:
        return session.scalar(
            select(ModelVersion.artifact_mac).where(ModelVersion.id == version_id)
        )


def test_a_version_is_registered_only_with_its_signature(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    version_id, _, _ = _version(sessions, store, b"model", SIGNER.sign(TENANT, "k", "d"))
    with sessions.begin() as session:
        unsigned = session.get(ModelVersion, version_id)
        assert unsigned is not None
        session.expunge(unsigned)
    unsigned.id, unsigned.run_id, unsigned.artifact_mac = str(uuid.uuid4()), "r2", None
    with sessions.begin() as session, pytest.raises(ValueError, match="signature"):
        ModelRegistry(session, TENANT).register(unsigned)


def test_versions_from_before_signatures_are_signed_once_their_files_check_out(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    intact, key, digest = _version(sessions, store, b"a model AIA wrote", None)
    changed, changed_key, _ = _version(sessions, store, b"another model", None)
    (tmp_path / "artifacts" / changed_key).write_bytes(b"swapped behind AIA's back")
    missing, missing_key, _ = _version(sessions, store, b"a third model", None)
    (tmp_path / "artifacts" / missing_key).unlink()

    report = sign_versions(sessions, store, SIGNER)
    assert report.signed == 1
    assert set(report.refused) == {changed, missing}
    assert "checksum" in report.refused[changed]
    mac = _mac(sessions, intact)
    assert mac is not None
    SIGNER.verify(ModelFile(TENANT, key, digest, mac))
    assert _mac(sessions, changed) is None
    assert _mac(sessions, missing) is None
    # Nothing left that it can sign: a second pass signs nothing again.
    assert sign_versions(sessions, store, SIGNER).signed == 0


def test_every_version_is_signed_again_under_a_new_key(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    version_id, key, digest = _version(sessions, store, b"model", None)
    sign_versions(sessions, store, SIGNER)
    new = ArtifactSigner("n" * 48)
    assert sign_versions(sessions, store, new).signed == 0
    assert sign_versions(sessions, store, new, every=True).signed == 1
    new.verify(ModelFile(TENANT, key, digest, _mac(sessions, version_id)))


def test_a_row_rewritten_while_signing_keeps_no_signature(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    version_id, _, _ = _version(sessions, store, b"model", None)

    class Rewriting(LocalArtifactStore):
        def get(self, key: str, sha256: str) -> bytes:
            data = super().get(key, sha256)
            # Between the check and the write, the row is pointed elsewhere.
            with sessions.begin() as session:
                session.execute(
                    update(ModelVersion)
                    .where(ModelVersion.id == version_id)
                    .values(artifact_key=f"{TENANT}/datasets/elsewhere.csv")
                )
            return data

    report = sign_versions(sessions, Rewriting(tmp_path / "artifacts"), SIGNER)
    assert (report.signed, report.changed_meanwhile) == (0, 1)
    assert _mac(sessions, version_id) is None
