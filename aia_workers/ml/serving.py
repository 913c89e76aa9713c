"""Model artifacts: write them, read them back checked, and keep recent ones loaded.

An artifact is a pickle that only AIA wrote, and it is unpickled only after its
bytes match the SHA-256 recorded when it was written (see ``artifacts``).
PyTorch weights inside it load with ``weights_only=True`` (see ``neural``).
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass

from aia_workers.ml.artifacts import ArtifactStore
from aia_workers.ml.fitted import Predictor

__all__ = ["CacheStats", "ModelCache", "dump_model", "load_model"]


def dump_model(model: Predictor) -> bytes:
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def load_model(store: ArtifactStore, key: str, sha256: str) -> Predictor:
    """The model under ``key``; IntegrityError, before unpickling, if its bytes changed."""
    data = store.get(key, sha256)
    model: Predictor = pickle.loads(data)  # noqa: S301 - written by AIA, checksum verified above
    return model


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0


class ModelCache:
    """The ``size`` most recently used models of one process, keyed by artifact checksum."""

    def __init__(self, store: ArtifactStore, size: int) -> None:
        self._store = store
        self._size = size
        self._models: OrderedDict[tuple[str, str], Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def get(self, key: str, sha256: str) -> tuple[Predictor, bool]:
        """The model, and whether it was already loaded."""
        slot = (key, sha256)
        with self._lock:
            model = self._models.get(slot)
            if model is not None:
                self._models.move_to_end(slot)
                self.stats.hits += 1
                return model, True
            self.stats.misses += 1
        # Loaded outside the lock: a slow load must not stall hits on other models.
        model = load_model(self._store, key, sha256)
        with self._lock:
            self._models[slot] = model
            self._models.move_to_end(slot)
            while len(self._models) > self._size:
                self._models.popitem(last=False)
        return model, False

    def __len__(self) -> int:
        return len(self._models)
