"""Drift reports, one per drift.check task, and each model's drift policy.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aia_workers.db.base import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_reports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("window", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("predictions", sa.JSON(), nullable=True),
        sa.Column("performance", sa.JSON(), nullable=True),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("drifted_share", sa.Float(), nullable=False),
        sa.Column("drift_share", sa.Float(), nullable=False),
        sa.Column("retrain", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("task_id", name="uq_drift_reports_task"),
    )
    op.create_index(
        "ix_drift_reports_model",
        "drift_reports",
        ["tenant_id", "model_name", "created_at", "id"],
    )
    op.create_table(
        "drift_policies",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("model_name", sa.String(200), primary_key=True),
        sa.Column("retrain_on", sa.String(32), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("drift_policies")
    op.drop_index("ix_drift_reports_model", table_name="drift_reports")
    op.drop_table("drift_reports")
