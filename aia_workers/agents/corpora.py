"""Corpora: a tenant's document collections, their files on the artifact store, their text.

A document's bytes are kept as uploaded (checked by SHA-256 on every read);
its text is extracted again whenever an index is built, by the same code that
measured it on upload (``aia_workers.agents.extraction``), so the offsets a
citation gives are offsets into that text.

Every change to a corpus's documents bumps its ``version`` in the same
transaction, so an index built for (corpus, version) is current exactly when
the version still is.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aia_workers.agents.extraction import DocumentKind, Extracted, extract_text
from aia_workers.db.agents import Corpus, CorpusDocument
from aia_workers.db.cursors import keyset_page
from aia_workers.errors import NotFoundError
from aia_workers.ml.artifacts import ArtifactStore

__all__ = [
    "CorpusContents",
    "CorpusNotFound",
    "CorpusRepository",
    "CorpusTotals",
    "LoadedDocument",
    "artifact_key",
    "load_contents",
    "new_corpus",
    "store_document",
]

_SUFFIX = {
    DocumentKind.TEXT: ".txt",
    DocumentKind.MARKDOWN: ".md",
    DocumentKind.HTML: ".html",
    DocumentKind.CSV: ".csv",
}


class CorpusNotFound(NotFoundError):
    """Raised when the tenant has no corpus of the id asked for."""


@dataclass(frozen=True, slots=True)
class CorpusTotals:
    """How many documents a corpus holds and their bytes."""

    documents: int = 0
    size_bytes: int = 0


class CorpusRepository:
    """Corpora and documents of one tenant; no method can see another tenant's rows."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def add(self, corpus: Corpus) -> None:
        if corpus.tenant_id != self._tenant_id:
            raise ValueError("a corpus belongs to the tenant that creates it")
        self._session.add(corpus)

    def get(self, corpus_id: str, *, hold: bool = False) -> Corpus | None:
        """The corpus, or None; ``hold`` keeps its version from moving until the transaction ends.

        A shared row lock on PostgreSQL (a document added meanwhile waits for
        it); SQLite's one writer at a time already gives the same.
        """
        stmt = select(Corpus).where(Corpus.tenant_id == self._tenant_id, Corpus.id == corpus_id)
        if hold:
            stmt = stmt.with_for_update(read=True)
        return self._session.scalars(stmt).one_or_none()

    def page(self, *, limit: int, cursor: str | None) -> tuple[list[Corpus], str | None]:
        stmt = select(Corpus).where(Corpus.tenant_id == self._tenant_id)
        return keyset_page(
            self._session, stmt, Corpus.created_at, Corpus.id, limit=limit, cursor=cursor
        )

    def totals(self, corpus_ids: Sequence[str]) -> dict[str, CorpusTotals]:
        """Documents and bytes of each corpus named (absent ones: none)."""
        if not corpus_ids:
            return {}
        stmt = (
            select(
                CorpusDocument.corpus_id,
                func.count(CorpusDocument.id),
                func.coalesce(func.sum(CorpusDocument.size_bytes), 0),
            )
            .where(
                CorpusDocument.tenant_id == self._tenant_id,
                CorpusDocument.corpus_id.in_(list(corpus_ids)),
            )
            .group_by(CorpusDocument.corpus_id)
        )
        return {
            corpus_id: CorpusTotals(int(count), int(size))
            for corpus_id, count, size in self._session.execute(stmt)
        }

    def remove(self, corpus: Corpus) -> list[str]:
        """Delete the corpus and its documents; the artifact keys to delete once committed."""
        documents = self.all_documents(corpus.id)
        for document in documents:
            self._session.delete(document)
        self._session.delete(corpus)
        return [d.artifact_key for d in documents]

    def document(self, corpus_id: str, document_id: str) -> CorpusDocument | None:
        stmt = select(CorpusDocument).where(
            CorpusDocument.tenant_id == self._tenant_id,
            CorpusDocument.corpus_id == corpus_id,
            CorpusDocument.id == document_id,
        )
        return self._session.scalars(stmt).one_or_none()

    def documents(
        self, corpus_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[CorpusDocument], str | None]:
        stmt = select(CorpusDocument).where(
            CorpusDocument.tenant_id == self._tenant_id, CorpusDocument.corpus_id == corpus_id
        )
        return keyset_page(
            self._session,
            stmt,
            CorpusDocument.created_at,
            CorpusDocument.id,
            limit=limit,
            cursor=cursor,
        )

    def all_documents(self, corpus_id: str) -> list[CorpusDocument]:
        """Every document of the corpus, oldest first (the order passages are numbered in)."""
        stmt = (
            select(CorpusDocument)
            .where(
                CorpusDocument.tenant_id == self._tenant_id,
                CorpusDocument.corpus_id == corpus_id,
            )
            .order_by(CorpusDocument.created_at, CorpusDocument.id)
        )
        return list(self._session.scalars(stmt))

    def add_document(self, corpus: Corpus, document: CorpusDocument) -> None:
        if document.tenant_id != self._tenant_id or document.corpus_id != corpus.id:
            raise ValueError("a document belongs to the corpus and tenant that store it")
        self._session.add(document)
        self._bump(corpus)

    def remove_document(self, corpus: Corpus, document: CorpusDocument) -> str:
        """Delete the document; its artifact key, to delete once committed."""
        self._session.delete(document)
        self._bump(corpus)
        return document.artifact_key

    def _bump(self, corpus: Corpus) -> None:
        # In SQL rather than in Python: two uploads at once each add one.
        self._session.flush()
        self._session.execute(
            update(Corpus)
            .where(Corpus.id == corpus.id, Corpus.tenant_id == self._tenant_id)
            .values(version=Corpus.version + 1, updated_at=datetime.now(UTC))
        )
        self._session.refresh(corpus)


def new_corpus(tenant: str, name: str, description: str | None, actor: str | None) -> Corpus:
    now = datetime.now(UTC)
    return Corpus(
        id=str(uuid.uuid4()),
        tenant_id=tenant,
        name=name,
        description=description,
        version=1,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )


def artifact_key(tenant: str, corpus_id: str, document_id: str, kind: DocumentKind) -> str:
    return f"{tenant}/corpora/{corpus_id}/{document_id}{_SUFFIX[kind]}"


def store_document(
    repository: CorpusRepository,
    artifacts: ArtifactStore,
    corpus: Corpus,
    *,
    name: str,
    data: bytes,
    extracted: Extracted,
    actor: str | None,
) -> CorpusDocument:
    """Put ``data`` on the artifact store and record it as a document of ``corpus``.

    ``extracted`` is ``data``'s text, taken by the caller before anything was
    stored so that a file without text is refused first.
    """
    document_id = str(uuid.uuid4())
    key = artifact_key(corpus.tenant_id, corpus.id, document_id, extracted.kind)
    digest = artifacts.put(key, data)
    document = CorpusDocument(
        id=document_id,
        corpus_id=corpus.id,
        tenant_id=corpus.tenant_id,
        name=name,
        media_type=extracted.kind.value,
        size_bytes=len(data),
        sha256=digest,
        artifact_key=key,
        text_chars=len(extracted.text),
        created_by=actor,
        created_at=datetime.now(UTC),
    )
    repository.add_document(corpus, document)
    return document


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """A document's id and name, and its text as extracted now."""

    id: str
    name: str
    kind: DocumentKind
    text: str


@dataclass(frozen=True, slots=True)
class CorpusContents:
    """Every document of one version of a corpus."""

    corpus_id: str
    name: str
    version: int
    documents: tuple[LoadedDocument, ...]


def load_contents(
    session: Session, artifacts: ArtifactStore, tenant: str, corpus: Corpus
) -> CorpusContents:
    """The documents of ``corpus`` at its current version, their bytes checked and read.

    Call inside a transaction that read ``corpus`` with ``hold=True``, so the
    documents read are those of the version recorded.
    """
    rows = CorpusRepository(session, tenant).all_documents(corpus.id)
    documents = []
    for row in rows:
        kind = DocumentKind(row.media_type)
        text = extract_text(artifacts.get(row.artifact_key, row.sha256), kind).text
        documents.append(LoadedDocument(row.id, row.name, kind, text))
    return CorpusContents(corpus.id, corpus.name, corpus.version, tuple(documents))
