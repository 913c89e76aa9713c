"""Model artifacts: write them, read them back checked, and keep recent ones loaded.

An artifact is a pickle that only AIA wrote, and it is unpickled only after its
version's signature checks out under AIA_ARTIFACT_KEY and its bytes match the
SHA-256 so signed (see ``artifacts``). PyTorch weights inside it load with
``weights_only=True`` (see ``neural``).
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass

from aia_workers.ml.artifacts import ArtifactSigner, ArtifactStore, ModelFile
from aia_workers.ml.trainers.fitted import Predictor

__all__ = ["CacheStats", "ModelCache", "dump_model", "load_model"]


def dump_model(model: Predictor) -> bytes:
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def load_model(store: ArtifactStore, signer: ArtifactSigner, file: ModelFile) -> Predictor:
    """The model in ``file``; IntegrityError, before unpickling, unless it is signed and intact."""
    # The signature first: it says the database row (key and checksum) is one AIA wrote.
    signer.verify(file)
    data = store.get(file.key, file.sha256)
    model: Predictor = pickle.loads(data)  # noqa: S301 - signed by AIA, checksum verified above
    return model


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0


class ModelCache:
    """The ``size`` most recently used models of one process, keyed by their signed file."""

    def __init__(self, store: ArtifactStore, signer: ArtifactSigner, size: int) -> None:
        self._store = store
        self._signer = signer
        self._size = size
        # The whole ModelFile is the key, signature included: a row pointing at
        # a loaded file with another signature is checked, never served from here.
        self._models: OrderedDict[ModelFile, Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def get(self, file: ModelFile) -> tuple[Predictor, bool]:
        """The model, and whether it was already loaded."""
        slot = file
        with self._lock:
            model = self._models.get(slot)
            if model is not None:
                self._models.move_to_end(slot)
                self.stats.hits += 1
                return model, True
            self.stats.misses += 1
        # Loaded outside the lock: a slow load must not stall hits on other models.
        model = load_model(self._store, self._signer, file)
        with self._lock:
            self._models[slot] = model
            self._models.move_to_end(slot)
            while len(self._models) > self._size:
                self._models.popitem(last=False)
        return model, False

    def __len__(self) -> int:
        return len(self._models)
