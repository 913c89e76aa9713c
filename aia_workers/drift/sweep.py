"""What ``drift.sweep`` checks: every tenant's model with a ``production`` alias.

Only versions that have a drift reference: one trained before references were
kept would fail its check on every sweep, telling nobody anything new.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from aia_workers.db.drift import DriftReference
from aia_workers.db.ml import ModelAlias, ModelVersion
from aia_workers.ml.registry import DEFAULT_ALIAS

__all__ = ["SweepTarget", "sweep_targets"]


@dataclass(frozen=True, slots=True)
class SweepTarget:
    tenant: str
    model: str
    version: int

    def payload(self) -> dict[str, object]:
        """The ``drift.check`` payload: the alias, resolved when the check runs."""
        return {"model": self.model, "alias": DEFAULT_ALIAS}


def sweep_targets(session: Session) -> list[SweepTarget]:
    """Across tenants, each model whose ``production`` version has a drift reference."""
    rows = session.execute(
        select(ModelAlias.tenant_id, ModelAlias.model_name, ModelAlias.version)
        .join(
            ModelVersion,
            and_(
                ModelVersion.tenant_id == ModelAlias.tenant_id,
                ModelVersion.model_name == ModelAlias.model_name,
                ModelVersion.version == ModelAlias.version,
            ),
        )
        .join(DriftReference, DriftReference.model_version_id == ModelVersion.id)
        .where(ModelAlias.alias == DEFAULT_ALIAS)
        .order_by(ModelAlias.tenant_id, ModelAlias.model_name)
    ).all()
    return [SweepTarget(tenant, model, version) for tenant, model, version in rows]
