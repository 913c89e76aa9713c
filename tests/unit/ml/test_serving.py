"""Model artifacts: stored with a checksum and signed, refused when changed, kept loaded LRU."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from aia_workers.ml.artifacts import (
    ArtifactSigner,
    IntegrityError,
    LocalArtifactStore,
    ModelFile,
    UnsignedArtifactError,
)
from aia_workers.ml.serving import ModelCache, dump_model, load_model

SIGNER = ArtifactSigner("k" * 48)


class Constant:
    """A stand-in model that predicts one value."""

    def __init__(self, value: int) -> None:
        self.value = value

    def predict_rows(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        return [{"prediction": self.value} for _ in range(len(frame))]


def _signed(tenant: str, key: str, digest: str) -> ModelFile:
    return ModelFile(tenant, key, digest, SIGNER.sign(tenant, key, digest))


def _store(tmp_path: Path, count: int) -> tuple[LocalArtifactStore, list[ModelFile]]:
    store = LocalArtifactStore(tmp_path)
    files = []
    for i in range(count):
        key = f"t1/models/m/{i}.pkl"
        files.append(_signed("t1", key, store.put(key, dump_model(Constant(i)))))
    return store, files


def test_round_trip_and_tampering_refused_before_unpickling(tmp_path: Path) -> None:
    store, [file] = _store(tmp_path, 1)
    model = load_model(store, SIGNER, file)
    assert model.predict_rows(pd.DataFrame({"x": [1, 2]})) == [{"prediction": 0}] * 2
    (tmp_path / file.key).write_bytes(b"not what AIA wrote")
    with pytest.raises(IntegrityError, match="checksum"):
        load_model(store, SIGNER, file)


class _Payload:
    """A pickle that, once loaded, leaves a directory behind: proof it ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_a_row_pointing_at_another_file_is_refused_before_unpickling(tmp_path: Path) -> None:
    store, [file] = _store(tmp_path, 1)
    marker = tmp_path / "ran"
    # A file of the attacker's choosing in the store (an uploaded dataset, say),
    # and the row rewritten to name it with its true checksum.
    planted = "t1/datasets/upload.csv"
    digest = store.put(planted, pickle.dumps(_Payload(marker)))
    for rewritten in (
        ModelFile("t1", planted, digest, file.mac),
        ModelFile("t1", planted, digest, None),
        ModelFile("t1", planted, digest, "0" * 64),
        # Signed, but under another key.
        ModelFile("t1", planted, digest, ArtifactSigner("x" * 48).sign("t1", planted, digest)),
    ):
        with pytest.raises(UnsignedArtifactError):
            load_model(store, SIGNER, rewritten)
    assert not marker.exists()


def test_a_signature_holds_for_its_tenant_only(tmp_path: Path) -> None:
    store, [file] = _store(tmp_path, 1)
    with pytest.raises(UnsignedArtifactError, match="does not match"):
        load_model(store, SIGNER, ModelFile("t2", file.key, file.sha256, file.mac))


def test_an_unsigned_version_names_the_command_that_signs_it(tmp_path: Path) -> None:
    store, [file] = _store(tmp_path, 1)
    with pytest.raises(UnsignedArtifactError, match="aia secrets sign-models"):
        load_model(store, SIGNER, ModelFile(file.tenant, file.key, file.sha256, None))


def test_no_key_neither_signs_nor_loads(tmp_path: Path) -> None:
    store, [file] = _store(tmp_path, 1)
    with pytest.raises(UnsignedArtifactError, match="AIA_ARTIFACT_KEY"):
        load_model(store, ArtifactSigner(""), file)


def test_cache_keeps_the_most_recently_used(tmp_path: Path) -> None:
    store, files = _store(tmp_path, 3)
    cache = ModelCache(store, SIGNER, size=2)
    assert cache.get(files[0])[1] is False
    assert cache.get(files[0])[1] is True
    cache.get(files[1])
    cache.get(files[0])  # 0 is now the most recent; 1 the least
    cache.get(files[2])  # evicts 1
    assert len(cache) == 2
    assert cache.get(files[0])[1] is True
    assert cache.get(files[1])[1] is False
    assert (cache.stats.hits, cache.stats.misses) == (3, 4)


def test_a_cached_model_is_not_reread(tmp_path: Path) -> None:
    store, [file] = _store(tmp_path, 1)
    cache = ModelCache(store, SIGNER, size=1)
    first, _ = cache.get(file)
    (tmp_path / file.key).unlink()
    again, hit = cache.get(file)
    assert hit
    assert again is first


def test_a_loaded_file_named_with_a_wrong_signature_is_not_served(tmp_path: Path) -> None:
    store, [file] = _store(tmp_path, 1)
    cache = ModelCache(store, SIGNER, size=1)
    cache.get(file)
    with pytest.raises(UnsignedArtifactError):
        cache.get(ModelFile(file.tenant, file.key, file.sha256, "0" * 64))


def test_an_unreachable_database_makes_ml_tasks_retry() -> None:
    import sqlalchemy.exc

    from aia_workers.db.session import database_outage_is_transient
    from aia_workers.errors import TransientError

    down = sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError())
    with pytest.raises(TransientError, match="unreachable"), database_outage_is_transient():
        raise down
    with pytest.raises(ValueError, match="not the database"), database_outage_is_transient():
        raise ValueError("not the database")


def test_an_ml_worker_needs_the_artifact_key_outside_dev_mode(tmp_path: Path) -> None:
    from aia_workers.ml.runtime import MLRuntime
    from aia_workers.settings import InsecureSettingsError, Settings

    with pytest.raises(InsecureSettingsError, match="AIA_ARTIFACT_KEY"):
        MLRuntime.from_settings(Settings(data_home=tmp_path, artifact_key="short"))
