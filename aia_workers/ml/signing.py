"""Sign the model versions stored before model files were signed (``aia secrets sign-models``).

A version is signed only after its file is read back and matches the SHA-256
in its row, so the command vouches for files as they are now: run it when
upgrading, or right after changing ``AIA_ARTIFACT_KEY`` (with ``every``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from aia_workers.ml.artifacts import ArtifactSigner, ArtifactStore, IntegrityError
from aia_workers.ml.registry import record_signature, versions_to_sign

__all__ = ["SigningReport", "sign_files", "sign_versions"]


@dataclass
class SigningReport:
    """What one pass signed, and the versions it refused with the reason for each."""

    signed: int = 0
    changed_meanwhile: int = 0
    refused: dict[str, str] = field(default_factory=dict)


def sign_versions(
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    signer: ArtifactSigner,
    *,
    every: bool = False,
) -> SigningReport:
    """Sign each unsigned version (every version with ``every``) whose file is intact."""
    with sessions() as session:
        rows = versions_to_sign(session, every=every)
    return sign_files(sessions, store, rows, signer.sign, record_signature)


def sign_files(
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    rows: Iterable[Sequence[str]],
    sign: Callable[[str, str, str], str],
    record: Callable[[Session, str, str, str, str], bool],
) -> SigningReport:
    """Sign each ``(row id, tenant, key, sha256)`` whose file still has that SHA-256.

    ``sign(tenant, key, sha256)`` makes the signature; ``record(session, row id,
    key, sha256, mac)`` stores it only if the row still names that file, and
    says whether it did.
    """
    report = SigningReport()
    for row_id, tenant, key, sha256 in rows:
        try:
            store.get(key, sha256)
        except (IntegrityError, OSError, ValueError) as exc:
            report.refused[row_id] = str(exc)
            continue
        with sessions.begin() as session:
            if record(session, row_id, key, sha256, sign(tenant, key, sha256)):
                report.signed += 1
            else:
                report.changed_meanwhile += 1
    return report
