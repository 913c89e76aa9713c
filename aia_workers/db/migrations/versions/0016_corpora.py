"""The research agent's corpora and their documents.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aia_workers.db.base import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_corpora",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(2000), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_agent_corpora_tenant_name"),
    )
    op.create_index(
        "ix_agent_corpora_tenant_created", "agent_corpora", ["tenant_id", "created_at", "id"]
    )
    op.create_table(
        "agent_documents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "corpus_id",
            sa.String(36),
            sa.ForeignKey("agent_corpora.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("artifact_key", sa.String(400), nullable=False),
        sa.Column("text_chars", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_agent_documents_corpus_created", "agent_documents", ["corpus_id", "created_at", "id"]
    )
    op.create_index("ix_agent_documents_tenant", "agent_documents", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("agent_documents")
    op.drop_table("agent_corpora")
