"""Model artifacts: stored with a checksum, refused when changed, kept loaded LRU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from aia_workers.ml.artifacts import IntegrityError, LocalArtifactStore
from aia_workers.ml.serving import ModelCache, dump_model, load_model


class Constant:
    """A stand-in model that predicts one value."""

    def __init__(self, value: int) -> None:
        self.value = value

    def predict_rows(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        return [{"prediction": self.value} for _ in range(len(frame))]


def _store(tmp_path: Path, count: int) -> tuple[LocalArtifactStore, list[tuple[str, str]]]:
    store = LocalArtifactStore(tmp_path)
    keys = []
    for i in range(count):
        key = f"t1/models/m/{i}.pkl"
        keys.append((key, store.put(key, dump_model(Constant(i)))))
    return store, keys


def test_round_trip_and_tampering_refused_before_unpickling(tmp_path: Path) -> None:
    store, [(key, digest)] = _store(tmp_path, 1)
    model = load_model(store, key, digest)
    assert model.predict_rows(pd.DataFrame({"x": [1, 2]})) == [{"prediction": 0}] * 2
    (tmp_path / key).write_bytes(b"not what AIA wrote")
    with pytest.raises(IntegrityError, match="checksum"):
        load_model(store, key, digest)


def test_cache_keeps_the_most_recently_used(tmp_path: Path) -> None:
    store, keys = _store(tmp_path, 3)
    cache = ModelCache(store, size=2)
    assert cache.get(*keys[0])[1] is False
    assert cache.get(*keys[0])[1] is True
    cache.get(*keys[1])
    cache.get(*keys[0])  # 0 is now the most recent; 1 the least
    cache.get(*keys[2])  # evicts 1
    assert len(cache) == 2
    assert cache.get(*keys[0])[1] is True
    assert cache.get(*keys[1])[1] is False
    assert (cache.stats.hits, cache.stats.misses) == (3, 4)


def test_a_cached_model_is_not_reread(tmp_path: Path) -> None:
    store, [(key, digest)] = _store(tmp_path, 1)
    cache = ModelCache(store, size=1)
    first, _ = cache.get(key, digest)
    (tmp_path / key).unlink()
    again, hit = cache.get(key, digest)
    assert hit
    assert again is first


def test_an_unreachable_database_makes_ml_tasks_retry() -> None:
    import sqlalchemy.exc

    from aia_workers.errors import TransientError
    from aia_workers.ml.tasks import _database_outage_is_transient

    down = sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError())
    with pytest.raises(TransientError, match="unreachable"), _database_outage_is_transient():
        raise down
    with pytest.raises(ValueError, match="not the database"), _database_outage_is_transient():
        raise ValueError("not the database")
