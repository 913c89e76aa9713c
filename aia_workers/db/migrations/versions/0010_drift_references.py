"""Each model version's drift reference: its training data's profile and a signed sample.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aia_workers.db.base import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_references",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column(
            "model_version_id", sa.String(36), sa.ForeignKey("model_versions.id"), nullable=False
        ),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("sample_rows", sa.Integer(), nullable=False),
        sa.Column("sample_key", sa.String(300), nullable=False),
        sa.Column("sample_sha256", sa.String(64), nullable=False),
        sa.Column("sample_mac", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("model_version_id", name="uq_drift_references_version"),
    )


def downgrade() -> None:
    op.drop_table("drift_references")
