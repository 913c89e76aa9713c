"""Where datasets and model files live: one small interface, a local folder by default.

Only AIA writes artifacts, and every read is checked against the SHA-256 taken
when it was written, so a file changed behind AIA's back is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import BinaryIO, Protocol

from aia_workers.errors import AiaError

__all__ = ["ArtifactStore", "IntegrityError", "LocalArtifactStore"]

_CHUNK = 1 << 20


class IntegrityError(AiaError):
    """Raised when an artifact's bytes no longer match the checksum recorded for them."""


class ArtifactStore(Protocol):
    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key``; returns its SHA-256 (hex)."""
        ...

    def put_file(self, key: str, source: BinaryIO) -> str:
        """Store what ``source`` holds from its start, a chunk at a time; its SHA-256 (hex)."""
        ...

    def get(self, key: str, sha256: str) -> bytes:
        """The bytes under ``key``, or IntegrityError when they do not match ``sha256``."""
        ...


class LocalArtifactStore:
    """Artifacts as files below ``root`` (by default the data home's ``artifacts``)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, key: str) -> Path:
        path = (self._root / key).resolve()
        if not path.is_relative_to(self._root.resolve()):
            raise ValueError(f"artifact key {key!r} leaves the store")
        return path

    def put(self, key: str, data: bytes) -> str:
        return self.put_file(key, io.BytesIO(data))

    def put_file(self, key: str, source: BinaryIO) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".partial")
        digest = hashlib.sha256()
        source.seek(0)
        with partial.open("wb") as handle:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        # A reader never sees half a file.
        partial.replace(path)
        return digest.hexdigest()

    def get(self, key: str, sha256: str) -> bytes:
        data = self._path(key).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError(
                f"the artifact {key} was changed outside AIA (checksum mismatch); refusing it"
            )
        return data
