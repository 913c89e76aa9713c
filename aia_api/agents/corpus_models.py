"""The corpus routes' request and response models, tag and path parameters."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from aia_api.http.openapi import path_param
from aia_api.http.responses import Closed, PageLinks

__all__ = [
    "CORPUS_ID",
    "DOCUMENT_ID",
    "CorpusLinks",
    "CorpusPage",
    "CorpusRequest",
    "CorpusView",
    "DocumentLinks",
    "DocumentPage",
    "DocumentView",
]

CORPUS_ID = path_param("CorpusId", "corpus_id", "The corpus's id.")
DOCUMENT_ID = path_param("DocumentId", "document_id", "The document's id.")


class CorpusRequest(BaseModel):
    """A new, empty corpus; upload its documents next."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Unique in the tenant.")
    description: str | None = Field(default=None, max_length=2000)


class CorpusLinks(Closed):
    self_: str = Field(alias="self")
    documents: str


class CorpusView(Closed):
    id: str
    name: str
    description: str | None
    version: int = Field(description="Goes up by one with every document added or deleted.")
    documents: int = Field(description="How many documents it holds.")
    size_bytes: int = Field(description="The bytes of its documents, as uploaded.")
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    links: CorpusLinks


class CorpusPage(Closed):
    """One page of the tenant's corpora, newest first."""

    items: list[CorpusView]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")
    links: PageLinks


class DocumentLinks(Closed):
    self_: str = Field(alias="self")
    text: str = Field(description="The extracted text that citations' offsets point into.")


class DocumentView(Closed):
    id: str
    corpus_id: str
    name: str
    media_type: str = Field(description="text/plain, text/markdown, text/html or text/csv.")
    size_bytes: int
    sha256: str = Field(description="Of the bytes as uploaded.")
    text_chars: int = Field(description="Characters of the text extracted from it.")
    created_by: str | None
    created_at: datetime
    links: DocumentLinks


class DocumentPage(Closed):
    """One page of a corpus's documents, newest first."""

    items: list[DocumentView]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")
    links: PageLinks
