"""What a tenant keeps on the artifact store, checked against its storage quota."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aia_workers.db.agents import CorpusDocument
from aia_workers.db.identity import Tenant
from aia_workers.db.ml import Dataset, ModelVersion

__all__ = ["lock_tenant", "storage_used"]


def storage_used(session: Session, tenant_id: str) -> int:
    """Bytes of the tenant's datasets, model files and corpus documents."""
    datasets = select(func.coalesce(func.sum(Dataset.size_bytes), 0)).where(
        Dataset.tenant_id == tenant_id
    )
    models = select(func.coalesce(func.sum(ModelVersion.size_bytes), 0)).where(
        ModelVersion.tenant_id == tenant_id
    )
    documents = select(func.coalesce(func.sum(CorpusDocument.size_bytes), 0)).where(
        CorpusDocument.tenant_id == tenant_id
    )
    return sum(int(session.scalar(q) or 0) for q in (datasets, models, documents))


def lock_tenant(session: Session, tenant_id: str) -> None:
    """Serialize the tenant's quota checks until this transaction ends.

    A row lock on PostgreSQL; SQLite (one machine) has no row locks, so there
    two uploads checked at the same instant may both pass.
    """
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())
