"""Tenant-scoped reads and writes of dataset records."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from aia_workers.db.cursors import keyset_page
from aia_workers.db.ml import Dataset

__all__ = ["DatasetRepository"]


class DatasetRepository:
    """Datasets of one tenant; no method can see another tenant's rows."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def add(self, dataset: Dataset) -> None:
        if dataset.tenant_id != self._tenant_id:
            raise ValueError("a dataset belongs to the tenant that stores it")
        self._session.add(dataset)

    def get(self, dataset_id: str) -> Dataset | None:
        stmt = select(Dataset).where(Dataset.tenant_id == self._tenant_id, Dataset.id == dataset_id)
        return self._session.scalars(stmt).one_or_none()

    def list(self, *, limit: int, cursor: str | None) -> tuple[list[Dataset], str | None]:
        stmt = select(Dataset).where(Dataset.tenant_id == self._tenant_id)
        return keyset_page(
            self._session, stmt, Dataset.created_at, Dataset.id, limit=limit, cursor=cursor
        )
