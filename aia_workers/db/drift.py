"""Drift: each version's reference, the reports of its checks, and each model's drift policy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aia_workers.db.base import Base, UTCDateTime

__all__ = ["DriftPolicy", "DriftReference", "DriftReport"]


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


class DriftReport(Base):
    """One drift check of a model version: its window, per-feature results and verdict.

    One per task (``task_id`` is unique): a check delivered twice finds the
    report its first delivery stored. The JSON columns hold
    ``aia_workers.drift.results`` as stored by ``aia_workers.drift.reports``.
    """

    __tablename__ = "drift_reports"
    __table_args__ = (
        UniqueConstraint("task_id", name="uq_drift_reports_task"),
        Index("ix_drift_reports_model", "tenant_id", "model_name", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[str] = mapped_column(String(36))
    # {kind: "predictions", since, until, rows} or {kind: "dataset", dataset_id, rows}.
    window: Mapped[Any] = mapped_column(JSON)
    # DatasetDrift.as_dict() of the features, and of the model's outputs (None: not checked).
    features: Mapped[Any] = mapped_column(JSON)
    predictions: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    # The metric on labelled feedback against the version's training metric (None: not measured).
    performance: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    drifted: Mapped[bool] = mapped_column(Boolean)
    drifted_share: Mapped[float] = mapped_column(Float)
    drift_share: Mapped[float] = mapped_column(Float)
    # {trigger, policy, task_id, error}: what the model's drift policy decided; None: nothing.
    retrain: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DriftPolicy(Base):
    """When a drift report retrains a model, per model; a model without a row never does."""

    __tablename__ = "drift_policies"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    retrain_on: Mapped[str] = mapped_column(String(32))
    alias: Mapped[str] = mapped_column(String(64))
    margin: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
