"""Ground truth fed back for logged predictions: a label, when it came, and an index on them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aia_workers.db.base import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_logs") as batch:
        batch.add_column(sa.Column("label", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("labelled_at", UTCDateTime(), nullable=True))
    op.create_index(
        "ix_predictions_labelled",
        "prediction_logs",
        ["tenant_id", "model_name", "version", "created_at"],
        postgresql_where=sa.text("label IS NOT NULL"),
        sqlite_where=sa.text("label IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_labelled", table_name="prediction_logs")
    with op.batch_alter_table("prediction_logs") as batch:
        batch.drop_column("labelled_at")
        batch.drop_column("label")
