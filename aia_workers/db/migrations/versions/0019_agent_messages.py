"""Agents' mailboxes: messages to an agent, ordered per sender, acknowledged by a run.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aia_workers.db.base import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_messages",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(36), nullable=False),
        sa.Column("sender", sa.String(200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("deliveries", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("acked_at", UTCDateTime(), nullable=True),
        sa.Column("acked_by", sa.String(64), nullable=True),
        sa.UniqueConstraint("tenant_id", "agent_id", "position", name="uq_agent_messages_position"),
        sa.UniqueConstraint(
            "tenant_id", "agent_id", "sender", "seq", name="uq_agent_messages_sender_seq"
        ),
        sa.UniqueConstraint(
            "tenant_id",
            "agent_id",
            "sender",
            "idempotency_key",
            name="uq_agent_messages_idempotency",
        ),
    )
    op.create_index(
        "ix_agent_messages_pending",
        "agent_messages",
        ["tenant_id", "agent_id", "acked_at", "position"],
    )


def downgrade() -> None:
    op.drop_table("agent_messages")
