"""Agents: the research agent's document collections (corpora) and their documents."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aia_workers.db.base import Base, UTCDateTime

__all__ = ["Corpus", "CorpusDocument"]


class Corpus(Base):
    """A tenant's named collection of documents that research agents search.

    ``version`` goes up with every document added or removed, so an index built
    for (id, version) is known to be current without reading the documents.
    """

    __tablename__ = "agent_corpora"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_agent_corpora_tenant_name"),
        Index("ix_agent_corpora_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CorpusDocument(Base):
    """One uploaded file of a corpus: where its bytes are and how much text it gave."""

    __tablename__ = "agent_documents"
    __table_args__ = (
        Index("ix_agent_documents_corpus_created", "corpus_id", "created_at", "id"),
        Index("ix_agent_documents_tenant", "tenant_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    corpus_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("agent_corpora.id", ondelete="CASCADE")
    )
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    media_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    artifact_key: Mapped[str] = mapped_column(String(400))
    # Characters of the text extracted from the file; citations are offsets into that text.
    text_chars: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
