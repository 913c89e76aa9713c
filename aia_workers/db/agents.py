"""Agents: what their runs keep between runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from aia_workers.db.base import Base, UTCDateTime

__all__ = ["MonitoringRuleState"]


class MonitoringRuleState(Base):
    """A monitoring agent's rule as its last run left it: ok or firing, and since when.

    A run compares its verdict with this row and announces ``alert.fired`` only
    when they differ, so a rule checked every minute alerts once per change.
    ``transitions`` counts the changes and makes each announcement's dedupe
    key, so a run delivered twice announces a change once.
    """

    __tablename__ = "monitoring_rule_states"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule: Mapped[str] = mapped_column(String(100), primary_key=True)
    # ok | firing
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    transitions: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime())
