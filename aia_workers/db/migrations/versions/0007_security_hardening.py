"""Room for secrets encrypted at rest, the last accepted TOTP step, signed model files.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# An encrypted secret is a Fernet token: several times longer than the secret.
_SECRET = sa.String(512)


def upgrade() -> None:
    with op.batch_alter_table("users") as users:
        users.alter_column("mfa_secret", type_=_SECRET, existing_type=sa.String(64))
        users.add_column(sa.Column("mfa_last_step", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("webhook_endpoints") as endpoints:
        endpoints.alter_column("secret", type_=_SECRET, existing_type=sa.String(120))
        endpoints.alter_column("previous_secret", type_=_SECRET, existing_type=sa.String(120))
    with op.batch_alter_table("model_versions") as versions:
        versions.add_column(sa.Column("artifact_mac", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as versions:
        versions.drop_column("artifact_mac")
    with op.batch_alter_table("webhook_endpoints") as endpoints:
        endpoints.alter_column("previous_secret", type_=sa.String(120), existing_type=_SECRET)
        endpoints.alter_column("secret", type_=sa.String(120), existing_type=_SECRET)
    with op.batch_alter_table("users") as users:
        users.drop_column("mfa_last_step")
        users.alter_column("mfa_secret", type_=sa.String(64), existing_type=_SECRET)
