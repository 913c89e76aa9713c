"""Tenant-scoped reads and writes of dataset records."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from aia_workers.db.cursors import decode_cursor, encode_cursor
from aia_workers.db.models import Dataset

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
        if cursor:
            created, last_id = decode_cursor(cursor)
            stmt = stmt.where(
                or_(
                    Dataset.created_at < created,
                    and_(Dataset.created_at == created, Dataset.id < last_id),
                )
            )
        stmt = stmt.order_by(Dataset.created_at.desc(), Dataset.id.desc()).limit(limit + 1)
        rows = list(self._session.scalars(stmt))
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
