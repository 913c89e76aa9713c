"""Sign the model versions stored before model files were signed (``aia secrets sign-models``).

A version is signed only after its file is read back and matches the SHA-256
in its row, so the command vouches for files as they are now: run it when
upgrading, or right after changing ``AIA_ARTIFACT_KEY`` (with ``every``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from aia_workers.ml.artifacts import ArtifactSigner, ArtifactStore, IntegrityError
from aia_workers.ml.registry import record_signature, versions_to_sign

__all__ = ["SigningReport", "sign_versions"]


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
    report = SigningReport()
    with sessions() as session:
        rows = versions_to_sign(session, every=every)
    for version_id, tenant, key, sha256 in rows:
        try:
            store.get(key, sha256)
        except (IntegrityError, OSError, ValueError) as exc:
            report.refused[version_id] = str(exc)
            continue
        mac = signer.sign(tenant, key, sha256)
        with sessions.begin() as session:
            # Only if the row still names the file just checked.
            if record_signature(session, version_id, key, sha256, mac):
                report.signed += 1
            else:
                report.changed_meanwhile += 1
    return report
