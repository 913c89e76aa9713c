"""What an ``ml`` worker process holds between tasks: sessions, the store, loaded models.

Made on first use inside the process that uses it, never at import: a prefork
child must not share its parent's database connections.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.ml.artifacts import ArtifactSigner, ArtifactStore, LocalArtifactStore
from aia_workers.ml.serving import ModelCache
from aia_workers.settings import Settings, get_settings

__all__ = ["MLRuntime", "runtime"]


@dataclass(frozen=True, slots=True)
class MLRuntime:
    settings: Settings
    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    signer: ArtifactSigner
    models: ModelCache

    @classmethod
    def from_settings(cls, settings: Settings) -> MLRuntime:
        store = LocalArtifactStore(settings.artifact_root)
        signer = ArtifactSigner.from_settings(settings)
        return cls(
            settings=settings,
            sessions=make_sessionmaker(make_engine(settings)),
            artifacts=store,
            signer=signer,
            models=ModelCache(store, signer, settings.model_cache_size),
        )


_lock = threading.Lock()
_current: tuple[int, MLRuntime] | None = None


def runtime() -> MLRuntime:
    """This process's runtime, made on first use (and again after a fork)."""
    global _current
    with _lock:
        if _current is None or _current[0] != os.getpid():
            _current = (os.getpid(), MLRuntime.from_settings(get_settings()))
        return _current[1]
