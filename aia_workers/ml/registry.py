"""Tenant-scoped reads and writes of experiments, runs, model versions and aliases.

Also, across tenants, the model versions ``aia secrets sign-models`` signs.
A new version and an alias move are announced (``model.version_created``,
``model.alias_changed``) through the ``ModelEvents`` sink the registry is given,
so ML does not know who listens: the ``ml`` tasks and the API's routes pass the
webhook outbox (``aia_workers.backbone.announcements``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.orm import Session

from aia_workers.db.cursors import keyset_page
from aia_workers.db.ml import (
    AliasChange,
    Experiment,
    ModelAlias,
    ModelVersion,
    PredictionLog,
    TrainingRun,
)
from aia_workers.errors import ConflictError, NotFoundError

__all__ = [
    "DEFAULT_ALIAS",
    "ModelEvents",
    "ModelRegistry",
    "RunStatus",
    "record_signature",
    "versions_to_sign",
]

DEFAULT_ALIAS = "production"


class RunStatus:
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ModelEvents(Protocol):
    """Where the registry announces a change, in the session (and transaction) that makes it.

    Called after the change is flushed, so an event commits or rolls back with
    it; events with the same ``dedupe_key`` are one event.
    """

    def __call__(
        self,
        session: Session,
        tenant: str,
        event_type: str,
        payload: Mapping[str, Any],
        /,
        *,
        dedupe_key: str,
    ) -> object: ...


class ModelRegistry:
    """Experiments and the models they produce, for one tenant only.

    Registering a version or moving an alias announces it through ``events``;
    a registry made without them only reads, records runs and logs predictions.
    """

    def __init__(self, session: Session, tenant_id: str, events: ModelEvents | None = None) -> None:
        self._session = session
        self._tenant = tenant_id
        self._events = events

    # -- experiments -----------------------------------------------------------

    def add_experiment(self, experiment: Experiment) -> None:
        if experiment.tenant_id != self._tenant:
            raise ValueError("an experiment belongs to the tenant that stores it")
        taken = self._session.scalar(
            select(func.count())
            .select_from(Experiment)
            .where(
                Experiment.tenant_id == self._tenant, Experiment.model_name == experiment.model_name
            )
        )
        if taken:
            raise ConflictError(f"there is already a model named {experiment.model_name!r}")
        self._session.add(experiment)

    def experiment(self, experiment_id: str) -> Experiment | None:
        return self._session.scalars(
            select(Experiment).where(
                Experiment.tenant_id == self._tenant, Experiment.id == experiment_id
            )
        ).one_or_none()

    def update_experiment(self, experiment_id: str, **values: Any) -> None:
        self._session.execute(
            update(Experiment)
            .where(Experiment.tenant_id == self._tenant, Experiment.id == experiment_id)
            .values(**values)
        )

    def experiment_for_model(self, model_name: str) -> Experiment | None:
        return self._session.scalars(
            select(Experiment).where(
                Experiment.tenant_id == self._tenant, Experiment.model_name == model_name
            )
        ).one_or_none()

    def experiments(self, *, limit: int, cursor: str | None) -> tuple[list[Experiment], str | None]:
        stmt = select(Experiment).where(Experiment.tenant_id == self._tenant)
        return keyset_page(
            self._session, stmt, Experiment.created_at, Experiment.id, limit=limit, cursor=cursor
        )

    def models(self, *, limit: int, cursor: str | None) -> tuple[list[Experiment], str | None]:
        """Experiments that have registered at least one version."""
        stmt = select(Experiment).where(
            Experiment.tenant_id == self._tenant, Experiment.latest_version > 0
        )
        return keyset_page(
            self._session, stmt, Experiment.created_at, Experiment.id, limit=limit, cursor=cursor
        )

    # -- runs ------------------------------------------------------------------

    def add_run(self, run: TrainingRun) -> None:
        if run.tenant_id != self._tenant:
            raise ValueError("a run belongs to the tenant that stores it")
        self._session.add(run)

    def run(self, run_id: str) -> TrainingRun | None:
        return self._session.scalars(
            select(TrainingRun).where(
                TrainingRun.tenant_id == self._tenant, TrainingRun.id == run_id
            )
        ).one_or_none()

    def runs(
        self, experiment_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[TrainingRun], str | None]:
        stmt = select(TrainingRun).where(
            TrainingRun.tenant_id == self._tenant, TrainingRun.experiment_id == experiment_id
        )
        return keyset_page(
            self._session, stmt, TrainingRun.created_at, TrainingRun.id, limit=limit, cursor=cursor
        )

    def update_run(self, run_id: str, **values: Any) -> None:
        self._session.execute(
            update(TrainingRun)
            .where(TrainingRun.tenant_id == self._tenant, TrainingRun.id == run_id)
            .values(**values)
        )

    # -- versions --------------------------------------------------------------

    def register(self, version: ModelVersion) -> ModelVersion:
        """Give ``version`` the model's next number and store it.

        A run registers at most one version: a training task delivered twice
        finds the version its first delivery made and returns that. The
        version must carry its file's signature, or no worker would load it.
        """
        if not version.artifact_mac:
            raise ValueError("a model version is registered with its file's signature")
        existing = self._session.scalars(
            select(ModelVersion).where(
                ModelVersion.tenant_id == self._tenant, ModelVersion.run_id == version.run_id
            )
        ).one_or_none()
        if existing is not None:
            return existing
        # The counter row is locked by the update until commit, so two runs
        # finishing together cannot take the same number.
        number = self._session.scalar(
            update(Experiment)
            .where(Experiment.tenant_id == self._tenant, Experiment.id == version.experiment_id)
            .values(latest_version=Experiment.latest_version + 1)
            .returning(Experiment.latest_version)
        )
        if number is None:
            raise NotFoundError(f"there is no experiment {version.experiment_id}")
        version.version = number
        version.tenant_id = self._tenant
        self._session.add(version)
        self._session.flush()
        self._announce(
            "model.version_created",
            {
                "model": version.model_name,
                "version": number,
                "experiment_id": version.experiment_id,
                "run_id": version.run_id,
                "estimator": version.estimator,
                "metrics": version.metrics,
            },
            dedupe_key=f"model.version_created:{version.id}",
        )
        return version

    def _announce(self, event_type: str, payload: Mapping[str, Any], *, dedupe_key: str) -> None:
        if self._events is None:
            # Loud rather than a change no subscriber ever hears of.
            raise TypeError(f"{event_type} needs a registry made with events to announce it")
        self._events(self._session, self._tenant, event_type, payload, dedupe_key=dedupe_key)

    def version(self, model_name: str, number: int) -> ModelVersion | None:
        return self._session.scalars(
            select(ModelVersion).where(
                ModelVersion.tenant_id == self._tenant,
                ModelVersion.model_name == model_name,
                ModelVersion.version == number,
            )
        ).one_or_none()

    def versions(self, model_name: str) -> Sequence[ModelVersion]:
        return self._session.scalars(
            select(ModelVersion)
            .where(ModelVersion.tenant_id == self._tenant, ModelVersion.model_name == model_name)
            .order_by(ModelVersion.version.desc())
        ).all()

    def resolve(self, model_name: str, *, version: int | None, alias: str | None) -> ModelVersion:
        """The version asked for: by number, by alias, else ``production``, else the latest."""
        if version is not None:
            found = self.version(model_name, version)
            if found is None:
                raise NotFoundError(f"model {model_name!r} has no version {version}")
            return found
        if alias is not None:
            pointer = self.alias(model_name, alias)
            if pointer is None:
                raise NotFoundError(f"model {model_name!r} has no alias {alias!r}")
            found = self.version(model_name, pointer.version)
        else:
            pointer = self.alias(model_name, DEFAULT_ALIAS)
            found = (
                self.version(model_name, pointer.version) if pointer else self._latest(model_name)
            )
        if found is None:
            raise NotFoundError(f"model {model_name!r} has no versions yet")
        return found

    def _latest(self, model_name: str) -> ModelVersion | None:
        return self._session.scalars(
            select(ModelVersion)
            .where(ModelVersion.tenant_id == self._tenant, ModelVersion.model_name == model_name)
            .order_by(ModelVersion.version.desc())
            .limit(1)
        ).first()

    # -- aliases ---------------------------------------------------------------

    def alias(self, model_name: str, alias: str, *, lock: bool = False) -> ModelAlias | None:
        """Where ``alias`` points; with ``lock``, held until commit (on PostgreSQL)."""
        return self._session.get(
            ModelAlias, (self._tenant, model_name, alias), with_for_update=lock or None
        )

    def aliases(self, model_name: str) -> Sequence[ModelAlias]:
        return self._session.scalars(
            select(ModelAlias)
            .where(ModelAlias.tenant_id == self._tenant, ModelAlias.model_name == model_name)
            .order_by(ModelAlias.alias)
        ).all()

    def alias_history(
        self, model_name: str, alias: str | None = None, *, moves_only: bool = False
    ) -> Sequence[AliasChange]:
        """The alias changes of ``model_name``, newest first.

        With ``moves_only``, without the decisions that left an alias where it
        was (a retrain's "kept"): those are history, but not moves to undo.
        """
        stmt = select(AliasChange).where(
            AliasChange.tenant_id == self._tenant, AliasChange.model_name == model_name
        )
        if alias is not None:
            stmt = stmt.where(AliasChange.alias == alias)
        if moves_only:
            stmt = stmt.where(AliasChange.from_version.is_distinct_from(AliasChange.to_version))
        return self._session.scalars(
            stmt.order_by(AliasChange.created_at.desc(), AliasChange.id.desc())
        ).all()

    def move_alias(
        self,
        model_name: str,
        alias: str,
        version: int | None,
        *,
        actor: str | None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AliasChange:
        """Point ``alias`` at ``version`` (None removes it) and record the move.

        ``details`` (JSON) says why, when a decision made the move (a retrain's scores).
        """
        if version is not None and self.version(model_name, version) is None:
            raise NotFoundError(f"model {model_name!r} has no version {version}")
        now = datetime.now(UTC)
        current = self.alias(model_name, alias)
        before = current.version if current is not None else None
        if version is None:
            if current is None:
                raise NotFoundError(f"model {model_name!r} has no alias {alias!r}")
            self._session.delete(current)
        elif current is None:
            self._session.add(
                ModelAlias(
                    tenant_id=self._tenant,
                    model_name=model_name,
                    alias=alias,
                    version=version,
                    updated_by=actor,
                    updated_at=now,
                )
            )
        else:
            current.version, current.updated_by, current.updated_at = version, actor, now
        change = AliasChange(
            id=str(uuid.uuid4()),
            tenant_id=self._tenant,
            model_name=model_name,
            alias=alias,
            from_version=before,
            to_version=version,
            changed_by=actor,
            reason=reason,
            details=dict(details) if details is not None else None,
            created_at=now,
        )
        self._session.add(change)
        self._session.flush()
        event: dict[str, Any] = {
            "model": model_name,
            "alias": alias,
            "from_version": before,
            "to_version": version,
            "changed_by": actor,
            "reason": reason,
        }
        if details is not None:
            event["details"] = change.details
        self._announce("model.alias_changed", event, dedupe_key=f"model.alias_changed:{change.id}")
        return change

    def keep_alias(
        self,
        model_name: str,
        alias: str,
        *,
        actor: str | None,
        reason: str | None,
        details: Mapping[str, Any],
    ) -> AliasChange:
        """Record a decision to leave ``alias`` where it points, and why.

        A history row whose ``from_version`` equals its ``to_version``; nothing
        moved, so nothing is announced and a rollback passes over it.
        """
        current = self.alias(model_name, alias)
        if current is None:
            raise NotFoundError(f"model {model_name!r} has no alias {alias!r}")
        change = AliasChange(
            id=str(uuid.uuid4()),
            tenant_id=self._tenant,
            model_name=model_name,
            alias=alias,
            from_version=current.version,
            to_version=current.version,
            changed_by=actor,
            reason=reason,
            details=dict(details),
            created_at=datetime.now(UTC),
        )
        self._session.add(change)
        self._session.flush()
        return change

    def rollback_alias(self, model_name: str, alias: str, *, actor: str | None) -> AliasChange:
        """Undo the alias's last move: point it back where it was before.

        Decisions that left the alias in place are not moves; they are passed over.
        """
        history = self.alias_history(model_name, alias, moves_only=True)
        if not history:
            raise NotFoundError(f"model {model_name!r} has no alias {alias!r} to roll back")
        last = history[0]
        if last.from_version is None:
            raise ConflictError(
                f"the alias {alias!r} pointed nowhere before its last move; "
                f"there is nothing to roll back to"
            )
        return self.move_alias(
            model_name,
            alias,
            last.from_version,
            actor=actor,
            reason=f"rollback of the move to version {last.to_version}",
        )

    # -- predictions -----------------------------------------------------------

    def log_predictions(self, entries: Sequence[PredictionLog], *, keep: int) -> None:
        """Store sampled predictions; keep the newest ``keep`` unlabelled ones per version.

        Labelled predictions are not counted or trimmed here: ground truth often
        arrives long after the prediction, and new traffic must not push out what
        a performance check needs (``ml.feedback`` bounds those on its own).
        """
        if not entries:
            return
        for entry in entries:
            entry.tenant_id = self._tenant
            self._session.add(entry)
        self._session.flush()
        first = entries[0]
        scope = (
            PredictionLog.tenant_id == self._tenant,
            PredictionLog.model_name == first.model_name,
            PredictionLog.version == first.version,
            PredictionLog.label.is_(None),
        )
        cutoff = self._session.scalar(
            select(PredictionLog.created_at)
            .where(*scope)
            .order_by(PredictionLog.created_at.desc())
            .offset(keep)
            .limit(1)
        )
        if cutoff is not None:
            self._session.execute(
                delete(PredictionLog).where(*scope, PredictionLog.created_at <= cutoff)
            )

    def predictions(self, model_name: str, *, limit: int) -> Sequence[PredictionLog]:
        return self._session.scalars(
            select(PredictionLog)
            .where(PredictionLog.tenant_id == self._tenant, PredictionLog.model_name == model_name)
            .order_by(PredictionLog.created_at.desc())
            .limit(limit)
        ).all()


# -- signatures, across tenants ------------------------------------------------------


def versions_to_sign(session: Session, *, every: bool = False) -> Sequence[Row[str, str, str, str]]:
    """(id, tenant_id, artifact_key, artifact_sha256) of each unsigned version, or of all."""
    v = ModelVersion
    stmt = select(v.id, v.tenant_id, v.artifact_key, v.artifact_sha256).order_by(v.id)
    if not every:
        stmt = stmt.where(v.artifact_mac.is_(None))
    return session.execute(stmt).all()


def record_signature(session: Session, version_id: str, key: str, sha256: str, mac: str) -> bool:
    """Store ``mac`` on a version whose file is still ``key`` with ``sha256``; whether it was."""
    v = ModelVersion
    result = session.execute(
        update(v)
        .where(v.id == version_id, v.artifact_key == key, v.artifact_sha256 == sha256)
        .values(artifact_mac=mac)
    )
    count: Any = result.rowcount  # type: ignore[attr-defined]
    return int(count) == 1
