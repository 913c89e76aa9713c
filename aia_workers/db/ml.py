"""Machine learning: datasets, experiments and their runs, the model registry, predictions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from aia_workers.db.base import Base, UTCDateTime

__all__ = [
    "AliasChange",
    "Dataset",
    "Experiment",
    "ModelAlias",
    "ModelVersion",
    "PredictionLog",
    "TrainingRun",
]


class Dataset(Base):
    """An uploaded table: where its bytes are, and what its columns hold."""

    __tablename__ = "datasets"
    __table_args__ = (Index("ix_datasets_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[Any] = mapped_column(JSON)
    size_bytes: Mapped[int] = mapped_column(Integer)
    artifact_key: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Experiment(Base):
    """What to learn: a task kind, a dataset, a target; its runs register versions of a model."""

    __tablename__ = "experiments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "model_name", name="uq_experiments_tenant_model"),
        Index("ix_experiments_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    model_name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(32))
    dataset_id: Mapped[str] = mapped_column(String(36))
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    features: Mapped[Any] = mapped_column(JSON)
    time_budget_seconds: Mapped[float] = mapped_column(Float)
    metric: Mapped[str | None] = mapped_column(String(32), nullable=True)
    options: Mapped[Any] = mapped_column(JSON)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TrainingRun(Base):
    """One training of an experiment, carried out by an ``ml.train`` task."""

    __tablename__ = "training_runs"
    __table_args__ = (Index("ix_runs_experiment_created", "experiment_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    experiment_id: Mapped[str] = mapped_column(String(36), ForeignKey("experiments.id"))
    task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    options: Mapped[Any] = mapped_column(JSON)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ModelVersion(Base):
    """A trained model in the registry: how it was made, how good it is, where its file is."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "model_name", "version", name="uq_model_versions"),
        UniqueConstraint("run_id", name="uq_model_versions_run"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    experiment_id: Mapped[str] = mapped_column(String(36), ForeignKey("experiments.id"))
    run_id: Mapped[str] = mapped_column(String(36))
    task: Mapped[str] = mapped_column(String(32))
    estimator: Mapped[str] = mapped_column(String(64))
    params: Mapped[Any] = mapped_column(JSON)
    metrics: Mapped[Any] = mapped_column(JSON)
    leaderboard: Mapped[Any] = mapped_column(JSON)
    details: Mapped[Any] = mapped_column(JSON)
    dataset_id: Mapped[str] = mapped_column(String(36))
    training_task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The input columns and their kinds, checked on every prediction.
    signature: Mapped[Any] = mapped_column(JSON)
    artifact_key: Mapped[str] = mapped_column(String(300))
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    # HMAC-SHA256 of the file under a key the database does not hold, so write
    # access to this table alone cannot make a worker load a file of its choosing.
    artifact_mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    trained_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ModelAlias(Base):
    """A name (``production``, ``staging``…) pointing at one version of a model."""

    __tablename__ = "model_aliases"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AliasChange(Base):
    """One move of an alias (or a recorded decision not to move it), kept forever."""

    __tablename__ = "model_alias_changes"
    __table_args__ = (
        Index("ix_alias_changes_model", "tenant_id", "model_name", "alias", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(200))
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    changed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Why an automatic decision went as it did (a retrain's scores and verdict). A
    # decision to keep the alias is a row whose from_version equals its to_version.
    details: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PredictionLog(Base):
    """A sampled prediction, the version that served it and, once fed back, its true label.

    Drift checks read these; performance checks read the labelled ones.
    """

    __tablename__ = "prediction_logs"
    __table_args__ = (
        Index("ix_predictions_model", "tenant_id", "model_name", "version", "created_at"),
        # Few rows are ever labelled: a partial index lets a performance check (and the
        # trimming of labelled rows) read just those, not every logged prediction.
        Index(
            "ix_predictions_labelled",
            "tenant_id",
            "model_name",
            "version",
            "created_at",
            postgresql_where=text("label IS NOT NULL"),
            sqlite_where=text("label IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    inputs: Mapped[Any] = mapped_column(JSON)
    outputs: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # SQL NULL, not JSON null, for "no label yet": a label is never null itself.
    label: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    labelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
