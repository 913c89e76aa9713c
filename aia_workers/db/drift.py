"""Drift: the reference each model version's later data is compared with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aia_workers.db.base import Base, UTCDateTime

__all__ = ["DriftReference"]


class DriftReference(Base):
    """A version's training-data profile, and where its sample file is, checksummed and signed.

    Stored in the transaction that registers the version, so every version
    trained since has exactly one.
    """

    __tablename__ = "drift_references"
    __table_args__ = (UniqueConstraint("model_version_id", name="uq_drift_references_version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    model_version_id: Mapped[str] = mapped_column(String(36), ForeignKey("model_versions.id"))
    profile: Mapped[Any] = mapped_column(JSON)
    # Rows profiled, and rows kept in the sample.
    rows: Mapped[int] = mapped_column(Integer)
    sample_rows: Mapped[int] = mapped_column(Integer)
    sample_key: Mapped[str] = mapped_column(String(300))
    sample_sha256: Mapped[str] = mapped_column(String(64))
    # HMAC under AIA_ARTIFACT_KEY, as for model files: a row rewritten to name
    # another file is refused before the file is read.
    sample_mac: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
