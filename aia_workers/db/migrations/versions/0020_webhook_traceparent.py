"""Webhook messages keep the traceparent of what caused them, for their deliveries' spans.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_messages") as messages:
        messages.add_column(sa.Column("traceparent", sa.String(55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_messages") as messages:
        messages.drop_column("traceparent")
