"""Each model's drift policy, and what it decides for a report.

Light (SQLAlchemy and the contracts only): the API reads and writes policies
through it, and the decision is a pure function the check calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from aia_workers.db.drift import DriftPolicy
from aia_workers.drift.contracts.payloads import DriftPolicyBody, RetrainOn, RetrainTrigger

__all__ = ["Policy", "PolicyRepository", "retrain_decision"]


@dataclass(frozen=True, slots=True)
class Policy:
    """A model's policy; ``updated_at`` None when it was never set (the default: never)."""

    retrain_on: RetrainOn = RetrainOn.NEVER
    alias: str = "production"
    margin: float = 0.0
    updated_by: str | None = None
    updated_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "retrain_on": self.retrain_on.value,
            "alias": self.alias,
            "margin": self.margin,
            "updated_by": self.updated_by,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


class PolicyRepository:
    """Drift policies of one tenant's models."""

    def __init__(self, session: Session, tenant: str) -> None:
        self._session = session
        self._tenant = tenant

    def get(self, model: str) -> Policy:
        row = self._session.get(DriftPolicy, (self._tenant, model))
        if row is None:
            return Policy()
        return Policy(
            retrain_on=RetrainOn(row.retrain_on),
            alias=row.alias,
            margin=row.margin,
            updated_by=row.updated_by,
            updated_at=row.updated_at,
        )

    def put(self, model: str, body: DriftPolicyBody, *, actor: str | None) -> Policy:
        """Set ``model``'s policy to ``body``, whole."""
        now = datetime.now(UTC)
        row = self._session.get(DriftPolicy, (self._tenant, model))
        if row is None:
            row = DriftPolicy(tenant_id=self._tenant, model_name=model)
            self._session.add(row)
        row.retrain_on = body.retrain_on.value
        row.alias = body.alias
        row.margin = body.margin
        row.updated_by = actor
        row.updated_at = now
        self._session.flush()
        return self.get(model)


def retrain_decision(
    policy: Policy, *, drifted: bool, performance: Mapping[str, Any] | None
) -> RetrainTrigger | None:
    """Why a report retrains its model under ``policy``, or None when it does not.

    ``performance`` is the report's performance drift (``{"drifted": bool, ...}``),
    None while it is not measured: a ``performance_drop`` policy then waits for it.
    """
    if policy.retrain_on is RetrainOn.DATASET_DRIFT and drifted:
        return RetrainTrigger.DRIFT
    if (
        policy.retrain_on is RetrainOn.PERFORMANCE_DROP
        and performance is not None
        and bool(performance.get("drifted"))
    ):
        return RetrainTrigger.PERFORMANCE
    return None
