"""``aia secrets``: re-encrypt stored secrets under the first key, sign model versions."""

from __future__ import annotations

import sys

from aia_api.cli.identity import read_credentials
from aia_workers.db.sealed import reseal_all
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.drift.references import sign_references
from aia_workers.ml.artifacts import ArtifactSigner, LocalArtifactStore
from aia_workers.ml.signing import sign_versions
from aia_workers.secretbox import SecretBox
from aia_workers.settings import Settings

__all__ = ["rotate", "sign_models"]


def _with_dev_keys(settings: Settings) -> Settings:
    # As `aia submit` takes its API key: on the machine that runs `aia dev`, the
    # keys it made are in the credentials file when the shell does not set them.
    stored = read_credentials(settings)
    update: dict[str, object] = {}
    if not settings.encryption_keys and stored.get("encryption_keys"):
        update["encryption_keys"] = list(stored["encryption_keys"])
    if not settings.artifact_key and stored.get("artifact_key"):
        update["artifact_key"] = str(stored["artifact_key"])
    return settings.model_copy(update=update) if update else settings


def rotate(settings: Settings) -> int:
    """Re-encrypt every stored secret under the first of AIA_ENCRYPTION_KEYS."""
    settings = _with_dev_keys(settings)
    box = SecretBox.from_settings(settings)
    engine = make_engine(settings)
    try:
        report = reseal_all(make_sessionmaker(engine), box)
    finally:
        engine.dispose()
    for column, count in report.resealed.items():
        print(f"{column}: {count} re-encrypted, {report.current[column]} already current")
    if report.changed_meanwhile:
        print(
            f"{report.changed_meanwhile} changed while this ran; run it again to check them",
            file=sys.stderr,
        )
    if report.unreadable:
        print(
            "no key in AIA_ENCRYPTION_KEYS decrypts these (put the key that wrote them back "
            "in the list): " + ", ".join(report.unreadable),
            file=sys.stderr,
        )
        return 1
    return 0


def sign_models(settings: Settings, *, every: bool) -> int:
    """Sign the model versions stored before model files were signed, files checked first."""
    settings = _with_dev_keys(settings)
    signer = ArtifactSigner.from_settings(settings)
    engine = make_engine(settings)
    store = LocalArtifactStore(settings.artifact_root)
    try:
        report = sign_versions(make_sessionmaker(engine), store, signer, every=every)
        # Drift reference samples are signed when written: only a new key leaves any unsigned.
        samples = sign_references(make_sessionmaker(engine), store, signer) if every else None
    finally:
        engine.dispose()
    print(f"{report.signed} model versions signed")
    if samples is not None:
        print(f"{samples.signed} drift reference samples signed")
        report.changed_meanwhile += samples.changed_meanwhile
        for reference_id, reason in samples.refused.items():
            print(f"not signed: drift reference {reference_id}: {reason}", file=sys.stderr)
    if report.changed_meanwhile:
        print(
            f"{report.changed_meanwhile} changed while this ran; run it again to check them",
            file=sys.stderr,
        )
    for version_id, reason in report.refused.items():
        print(f"not signed: version {version_id}: {reason}", file=sys.stderr)
    return 1 if report.refused or (samples and samples.refused) else 0
