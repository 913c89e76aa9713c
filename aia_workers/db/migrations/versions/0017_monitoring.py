"""Monitoring agents: each rule's last state, so an alert fires once per change.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aia_workers.db.base import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_rule_states",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("agent_id", sa.String(64), primary_key=True),
        sa.Column("rule", sa.String(100), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("transitions", sa.Integer(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("evaluated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("monitoring_rule_states")
