"""SQLAlchemy models. Every row belongs to a tenant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AliasChange",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Dataset",
    "Experiment",
    "ModelAlias",
    "ModelVersion",
    "PredictionLog",
    "RefreshToken",
    "TaskRecord",
    "Tenant",
    "TrainingRun",
    "UTCDateTime",
    "User",
    "WebhookAttempt",
    "WebhookEndpoint",
    "WebhookMessage",
]


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TaskRecord(Base):
    """The history of one task, written by the recorder from the event stream."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_tasks_tenant_status", "tenant_id", "status"),
        Index("ix_tasks_tenant_type", "tenant_id", "type"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(128))
    queue: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    payload: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    result: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    error: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    priority: Mapped[int | None] = mapped_column(Integer, nullable=True)
    eta: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class User(Base):
    """A person who logs in with a password (and a TOTP code once MFA is on)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"), index=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    # Encrypted at rest (aia_workers/secretbox.py), so longer than the secret.
    mfa_secret: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # The last TOTP time step accepted, so no code is accepted twice (RFC 6238 §5.2).
    mfa_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mfa_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # SHA-256 digests of the unused one-time recovery codes.
    recovery_codes: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKey(Base):
    """A credential for services; only its SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RefreshToken(Base):
    """One link of a refresh-token family; each works once."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The login that started the family passed the second factor; each token
    # of the family carries it on, as the access tokens it buys do.
    mfa: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class AuditEvent(Base):
    """An append-only record of a security-relevant event."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


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
    """One move of an alias, kept forever so any move can be undone."""

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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PredictionLog(Base):
    """A sampled prediction and the version that served it; drift checks read these."""

    __tablename__ = "prediction_logs"
    __table_args__ = (
        Index("ix_predictions_model", "tenant_id", "model_name", "version", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    inputs: Mapped[Any] = mapped_column(JSON)
    outputs: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookEndpoint(Base):
    """Where a tenant wants to hear about events, and the secret deliveries are signed with."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    events: Mapped[Any] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Encrypted at rest (aia_workers/secretbox.py), as is the previous one.
    secret: Mapped[str] = mapped_column(String(512))
    # During a rotation the old secret also signs, until it expires.
    previous_secret: Mapped[str | None] = mapped_column(String(512), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), nullable=True
    )
    disabled_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # The first failure since the last success; None while healthy.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookMessage(Base):
    """One event for one endpoint: the outbox row a delivery task works from.

    Written in the same transaction as the change it reports; its id is the
    ``webhook-id`` of every attempt, so receivers can deduplicate.
    """

    __tablename__ = "webhook_messages"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "dedupe_key", name="uq_webhook_messages_dedupe"),
        Index("ix_webhook_messages_due", "status", "next_attempt_at"),
        Index("ix_webhook_messages_endpoint", "endpoint_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    endpoint_id: Mapped[str] = mapped_column(String(36), ForeignKey("webhook_endpoints.id"))
    event_type: Mapped[str] = mapped_column(String(64))
    # What makes two messages the same event (e.g. "task.succeeded:<task id>").
    dedupe_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[Any] = mapped_column(JSON)
    # pending -> sending -> delivered | pending (retry) | failed (dead letter)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # How the next attempt was asked for: scheduled, manual or replay.
    trigger: Mapped[str] = mapped_column(String(16), default="scheduled")
    # A sending message whose lease ran out was lost with its worker; it is sent again.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookAttempt(Base):
    """One try at delivering a message: what came back, how long it took, what next."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_endpoint", "endpoint_id", "created_at", "id"),
        Index("ix_webhook_attempts_message", "message_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    endpoint_id: Mapped[str] = mapped_column(String(36))
    message_id: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(2000))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
