"""Where datasets and model files live: one small interface, a local folder by default.

Only AIA writes artifacts, and every read is checked against the SHA-256 taken
when it was written, so a file changed behind AIA's back is refused. A model
file is also signed: its SHA-256 sits in the database beside its key, and
whoever can write there could point a version at any file in the store (an
uploaded dataset, say) with that file's checksum. The signature is an
HMAC-SHA256 under ``AIA_ARTIFACT_KEY`` of the tenant, the key and the checksum;
the database never holds that key, so a row AIA did not sign is refused before
anything is unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from aia_workers.errors import AiaError
from aia_workers.settings import InsecureSettingsError, Settings

__all__ = [
    "ArtifactSigner",
    "ArtifactStore",
    "IntegrityError",
    "LocalArtifactStore",
    "ModelFile",
    "UnsignedArtifactError",
]

_CHUNK = 1 << 20
# Part of every signed message, so a signature made for anything else never passes.
_MAC_CONTEXT = b"aia-model-file-v1"
_MIN_KEY_LENGTH = 32
_SIGN_COMMAND = "aia secrets sign-models"


class IntegrityError(AiaError):
    """Raised when an artifact's bytes no longer match the checksum recorded for them."""


class UnsignedArtifactError(IntegrityError):
    """Raised when a model version has no signature, or one that AIA_ARTIFACT_KEY did not make."""


@dataclass(frozen=True, slots=True)
class ModelFile:
    """Where a model version's file is, its checksum, and the signature over both."""

    tenant: str
    key: str
    sha256: str
    mac: str | None


class ArtifactSigner:
    """Signs model files when they are registered and checks them before they are loaded."""

    def __init__(self, key: str) -> None:
        self._key = key.encode("utf-8")

    @classmethod
    def from_settings(cls, settings: Settings) -> ArtifactSigner:
        """The signer for ``settings``; InsecureSettingsError on a short key outside dev mode."""
        if not settings.dev and len(settings.artifact_key) < _MIN_KEY_LENGTH:
            raise InsecureSettingsError(
                f"AIA_ARTIFACT_KEY must be set to a random value of at least {_MIN_KEY_LENGTH} "
                "characters, the same for the API and every ml worker (e.g. `python -c "
                "'import secrets; print(secrets.token_urlsafe(48))'`); set AIA_DEV=1 only on a "
                "development machine"
            )
        return cls(settings.artifact_key)

    def sign(self, tenant: str, key: str, sha256: str) -> str:
        """The signature (hex) of the file under ``key`` whose checksum is ``sha256``."""
        if not self._key:
            raise UnsignedArtifactError(
                "AIA_ARTIFACT_KEY is not set, so model files can be neither signed nor loaded"
            )
        message = b"\0".join(
            (_MAC_CONTEXT, tenant.encode("utf-8"), key.encode("utf-8"), sha256.encode("utf-8"))
        )
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, file: ModelFile) -> None:
        """Return when ``file``'s signature is one we made; UnsignedArtifactError otherwise."""
        if not file.mac:
            raise UnsignedArtifactError(
                f"the model file {file.key} is not signed (it was stored before model files "
                f"were); run `{_SIGN_COMMAND}` to sign it after checking its checksum"
            )
        expected = self.sign(file.tenant, file.key, file.sha256)
        if not hmac.compare_digest(expected, file.mac):
            raise UnsignedArtifactError(
                f"the signature of the model file {file.key} does not match: its database row "
                "was changed outside AIA, or AIA_ARTIFACT_KEY is not the key that signed it "
                f"(after changing the key, run `{_SIGN_COMMAND} --all`); refusing it"
            )


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

    def delete(self, key: str) -> None:
        """Remove what is under ``key``; nothing happens when there is nothing."""
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

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
