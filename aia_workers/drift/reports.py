"""Stored drift reports of one tenant: added once per task, read back, paged newest first.

Light (SQLAlchemy only): the API lists and shows reports through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aia_workers.db.cursors import keyset_page
from aia_workers.db.drift import DriftReport

__all__ = ["ReportRepository"]


class ReportRepository:
    """Drift reports of one tenant; no method can see another tenant's."""

    def __init__(self, session: Session, tenant: str) -> None:
        self._session = session
        self._tenant = tenant

    def add(self, report: DriftReport) -> None:
        if report.tenant_id != self._tenant:
            raise ValueError("a report belongs to the tenant that stores it")
        self._session.add(report)
        self._session.flush()

    def get(self, model: str, report_id: str) -> DriftReport | None:
        return self._session.scalars(
            select(DriftReport).where(
                DriftReport.tenant_id == self._tenant,
                DriftReport.model_name == model,
                DriftReport.id == report_id,
            )
        ).one_or_none()

    def for_task(self, task_id: str) -> DriftReport | None:
        """The report a task stored, if it stored one."""
        return self._session.scalars(
            select(DriftReport).where(
                DriftReport.tenant_id == self._tenant, DriftReport.task_id == task_id
            )
        ).one_or_none()

    def page(
        self, model: str, *, limit: int, cursor: str | None
    ) -> tuple[list[DriftReport], str | None]:
        """``model``'s reports, newest first."""
        stmt = select(DriftReport).where(
            DriftReport.tenant_id == self._tenant, DriftReport.model_name == model
        )
        return keyset_page(
            self._session, stmt, DriftReport.created_at, DriftReport.id, limit=limit, cursor=cursor
        )

    def record_retrain(self, report_id: str, **fields: Any) -> Mapping[str, Any] | None:
        """Merge ``fields`` (task_id, error) into the report's retrain decision; the result."""
        report = self._session.scalars(
            select(DriftReport).where(
                DriftReport.tenant_id == self._tenant, DriftReport.id == report_id
            )
        ).one_or_none()
        if report is None or report.retrain is None:
            return None
        merged = {**report.retrain, **fields}
        # A new dict, assigned: SQLAlchemy does not see changes inside a JSON value.
        self._session.execute(
            update(DriftReport)
            .where(DriftReport.tenant_id == self._tenant, DriftReport.id == report_id)
            .values(retrain=merged)
        )
        return merged
