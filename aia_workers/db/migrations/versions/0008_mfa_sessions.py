"""Whether the login behind a refresh-token family passed the second factor.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Families from before are taken as not having passed it: their sessions
    # make no admin key until their next login with a code.
    with op.batch_alter_table("refresh_tokens") as tokens:
        tokens.add_column(sa.Column("mfa", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as tokens:
        tokens.drop_column("mfa")
