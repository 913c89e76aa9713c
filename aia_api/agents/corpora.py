"""``/v1/agents/corpora``: a tenant's document collections, which research agents search.

A document is uploaded as its raw bytes (with its content type and ``?name=``)
or as a multipart form; its text is extracted before anything is stored, so a
file with no usable text is refused (422) and never takes room. Every change
to a corpus's documents bumps its version, and the agents workers rebuild their
index of it on the next question.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import sqlalchemy.exc
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.agents.corpus_models import (
    CORPUS_ID,
    DOCUMENT_ID,
    CorpusPage,
    CorpusRequest,
    CorpusView,
    DocumentPage,
    DocumentView,
)
from aia_api.agents.openapi import AGENTS
from aia_api.http.body import bounded_form, media_type, parse_model, read_bytes, read_json
from aia_api.http.listing import Page, stored_page
from aia_api.http.openapi import CURSOR, LIMIT, SECURED, WITH_BODY, Body, Reply, operation
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import Services, services
from aia_api.webhooks.audit import record_change
from aia_workers.agents.corpora import (
    CorpusRepository,
    CorpusTotals,
    new_corpus,
    store_document,
)
from aia_workers.agents.extraction import (
    ACCEPTED,
    DocumentError,
    DocumentKind,
    Extracted,
    UnsupportedDocumentType,
    document_kind,
    extract_text,
)
from aia_workers.db.agents import Corpus, CorpusDocument
from aia_workers.db.quotas import lock_tenant, storage_used

__all__ = ["routes"]

_BASE = "/v1/agents/corpora"
_NEEDS_READ = "Needs `agents:read`."
_NEEDS_MANAGE = "Needs `agents:manage`."
_MAX_NAME = 300


def corpus_view(corpus: Corpus, totals: CorpusTotals) -> dict[str, Any]:
    link = f"{_BASE}/{corpus.id}"
    return {
        "id": corpus.id,
        "name": corpus.name,
        "description": corpus.description,
        "version": corpus.version,
        "documents": totals.documents,
        "size_bytes": totals.size_bytes,
        "created_by": corpus.created_by,
        "created_at": corpus.created_at.isoformat(),
        "updated_at": corpus.updated_at.isoformat(),
        "links": {"self": link, "documents": f"{link}/documents"},
    }


def document_view(document: CorpusDocument) -> dict[str, Any]:
    link = f"{_BASE}/{document.corpus_id}/documents/{document.id}"
    return {
        "id": document.id,
        "corpus_id": document.corpus_id,
        "name": document.name,
        "media_type": document.media_type,
        "size_bytes": document.size_bytes,
        "sha256": document.sha256,
        "text_chars": document.text_chars,
        "created_by": document.created_by,
        "created_at": document.created_at.isoformat(),
        "links": {"self": link, "text": f"{link}/text"},
    }


def _no_corpus(corpus_id: str) -> Problem:
    return Problem(404, "corpus-not-found", "Corpus not found", f"there is no corpus {corpus_id}")


def _no_document(document_id: str) -> Problem:
    return Problem(
        404, "document-not-found", "Document not found", f"there is no document {document_id}"
    )


def _corpus(repository: CorpusRepository, corpus_id: str) -> Corpus:
    corpus = repository.get(corpus_id)
    if corpus is None:
        raise _no_corpus(corpus_id)
    return corpus


def _document(repository: CorpusRepository, corpus_id: str, document_id: str) -> CorpusDocument:
    _corpus(repository, corpus_id)
    document = repository.document(corpus_id, document_id)
    if document is None:
        raise _no_document(document_id)
    return document


@operation(
    id="createCorpus",
    summary="Create a corpus",
    tag=AGENTS,
    permission=Permission.AGENTS_MANAGE,
    responses={201: Reply("Created, empty.", CorpusView, headers=("Location",))},
    errors=(*SECURED, *WITH_BODY, "409"),
    description=(
        f"{_NEEDS_MANAGE} A named collection of documents for research agents to search; "
        "409 `corpus-name-taken` for a name the tenant uses. Audited as `corpus.create`."
    ),
    body=Body("Its name.", CorpusRequest),
)
async def create_corpus(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_MANAGE)
    svc = services(request)
    body = parse_model(CorpusRequest, await read_json(request, svc.settings.max_body_bytes))
    corpus = new_corpus(principal.tenant, body.name, body.description, principal.actor)

    def store() -> None:
        with svc.sessions.begin() as session:
            CorpusRepository(session, principal.tenant).add(corpus)
            try:
                session.flush()
            except sqlalchemy.exc.IntegrityError:
                raise Problem(
                    409,
                    "corpus-name-taken",
                    "Corpus name taken",
                    f"the tenant has a corpus named {body.name!r} already; pick another name",
                    errors=[
                        {
                            "loc": ["body", "name"],
                            "pointer": "/name",
                            "message": "already taken",
                            "type": "unique",
                        }
                    ],
                ) from None
            record_change(
                session,
                request,
                "corpus.create",
                tenant=principal.tenant,
                actor=principal.actor,
                detail={"corpus_id": corpus.id, "name": corpus.name},
            )

    await anyio.to_thread.run_sync(store)
    view = corpus_view(corpus, CorpusTotals())
    return json_reply(view, 201, {"Location": view["links"]["self"]})


@operation(
    id="listCorpora",
    summary="List corpora",
    tag=AGENTS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("Newest first; follow links.next for more.", CorpusPage)},
    errors=(*SECURED, "400", "422"),
    description=_NEEDS_READ,
    parameters=(LIMIT, CURSOR),
)
async def list_corpora(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)

    def fetch(session: Session, limit: int, cursor: str | None) -> Page[dict[str, Any]]:
        repository = CorpusRepository(session, principal.tenant)
        rows, next_cursor = repository.page(limit=limit, cursor=cursor)
        totals = repository.totals([r.id for r in rows])
        return [corpus_view(r, totals.get(r.id, CorpusTotals())) for r in rows], next_cursor

    return await stored_page(request, services(request).sessions, fetch)


@operation(
    id="getCorpus",
    summary="A corpus",
    tag=AGENTS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("The corpus, with its document count and version.", CorpusView)},
    errors=(*SECURED, "404"),
    description=_NEEDS_READ,
    parameters=(CORPUS_ID,),
)
async def get_corpus(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)
    svc = services(request)
    corpus_id = request.path_params["corpus_id"]

    def load() -> dict[str, Any]:
        with svc.sessions() as session:
            repository = CorpusRepository(session, principal.tenant)
            corpus = _corpus(repository, corpus_id)
            return corpus_view(
                corpus, repository.totals([corpus.id]).get(corpus.id, CorpusTotals())
            )

    return json_reply(await anyio.to_thread.run_sync(load))


@operation(
    id="deleteCorpus",
    summary="Delete a corpus and its documents",
    tag=AGENTS,
    permission=Permission.AGENTS_MANAGE,
    responses={204: Reply("Deleted, with every document and its stored file.")},
    errors=(*SECURED, "404"),
    description=(
        f"{_NEEDS_MANAGE} Agents configured with it fail their next run, saying so. "
        "Audited as `corpus.delete`."
    ),
    parameters=(CORPUS_ID,),
)
async def delete_corpus(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_MANAGE)
    svc = services(request)
    corpus_id = request.path_params["corpus_id"]

    def remove() -> None:
        with svc.sessions.begin() as session:
            repository = CorpusRepository(session, principal.tenant)
            corpus = _corpus(repository, corpus_id)
            name = corpus.name
            keys = repository.remove(corpus)
            record_change(
                session,
                request,
                "corpus.delete",
                tenant=principal.tenant,
                actor=principal.actor,
                detail={"corpus_id": corpus_id, "name": name, "documents": len(keys)},
            )
        # Only once the rows are gone: a rollback must not leave rows without files.
        for key in keys:
            svc.artifacts.delete(key)

    await anyio.to_thread.run_sync(remove)
    return Response(status_code=204)


_UPLOAD_CONTENT = {
    **{kind.value: {"schema": {"type": "string"}} for kind in DocumentKind},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {
                "file": {
                    "type": "string",
                    "description": (
                        "The file; its part's content type, or else its file name's "
                        "extension (.txt, .md, .html, .csv), gives its kind."
                    ),
                },
                "name": {"type": "string", "maxLength": _MAX_NAME},
            },
            "required": ["file"],
        }
    },
}
_NAME_PARAM = {
    "name": "name",
    "in": "query",
    "required": False,
    "description": "The document's name (required unless sent as a multipart form).",
    "schema": {"type": "string", "minLength": 1, "maxLength": _MAX_NAME},
}


@operation(
    id="uploadCorpusDocument",
    summary="Add a document to a corpus",
    tag=AGENTS,
    permission=Permission.AGENTS_MANAGE,
    responses={201: Reply("Stored and counted.", DocumentView, headers=("Location",))},
    errors=(*SECURED, *WITH_BODY, "404"),
    description=(
        f"{_NEEDS_MANAGE} Send one file: its bytes with its content type ({ACCEPTED}) and "
        "`?name=`, or a multipart form with the file in its `file` part. HTML is read "
        "as its visible text (scripts and styles dropped); each CSV row becomes a passage "
        "of `column: value` pairs. 415 for another type, 413 past "
        "AIA_AGENT_DOCUMENT_MAX_BYTES or the tenant's storage quota, 422 for a file with "
        "no text or not in UTF-8. Audited as `corpus.document.add`."
    ),
    parameters=(CORPUS_ID, _NAME_PARAM),
    body=Body("The document.", content=_UPLOAD_CONTENT),
)
async def upload_document(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_MANAGE)
    svc = services(request)
    corpus_id = request.path_params["corpus_id"]
    limit = svc.settings.agent_document_max_bytes
    tenant = principal.tenant

    def check_corpus() -> None:
        with svc.sessions() as session:
            _corpus(CorpusRepository(session, tenant), corpus_id)

    # Before the body is read: a mistyped id costs no upload.
    await anyio.to_thread.run_sync(check_corpus)
    if media_type(request) == "multipart/form-data":
        name, kind, data = await _form_file(request, limit)
    else:
        name = _checked_name(request.query_params.get("name", ""))
        kind = _kind(request.headers.get("content-type", ""), name)
        data = await read_bytes(request, limit)
    extracted = await anyio.to_thread.run_sync(_extract, data, kind)

    def store() -> CorpusDocument:
        with svc.sessions.begin() as session:
            # The tenant's lock first, as every quota check takes it: two
            # uploads racing past the quota cannot both land.
            lock_tenant(session, tenant)
            _within_quota(svc, storage_used(session, tenant), len(data))
            repository = CorpusRepository(session, tenant)
            corpus = _corpus(repository, corpus_id)
            document = store_document(
                repository,
                svc.artifacts,
                corpus,
                name=name,
                data=data,
                extracted=extracted,
                actor=principal.actor,
            )
            record_change(
                session,
                request,
                "corpus.document.add",
                tenant=tenant,
                actor=principal.actor,
                detail={
                    "corpus_id": corpus_id,
                    "document_id": document.id,
                    "name": name,
                    "size_bytes": len(data),
                },
            )
            return document

    view = document_view(await anyio.to_thread.run_sync(store))
    return json_reply(view, 201, {"Location": view["links"]["self"]})


def _checked_name(name: str) -> str:
    if not name or len(name) > _MAX_NAME:
        raise Problem(
            422,
            "validation-error",
            "Invalid request",
            f"name the document with ?name= (1 to {_MAX_NAME} characters)",
            errors=[
                {
                    "loc": ["query", "name"],
                    "pointer": "/query/name",
                    "message": f"1 to {_MAX_NAME} characters required",
                    "type": "missing" if not name else "string_too_long",
                }
            ],
        )
    return name


def _kind(content_type: str, name: str) -> DocumentKind:
    try:
        return document_kind(content_type, name)
    except UnsupportedDocumentType as exc:
        raise Problem(415, "unsupported-media-type", "Unsupported media type", str(exc)) from None


def _extract(data: bytes, kind: DocumentKind) -> Extracted:
    try:
        return extract_text(data, kind)
    except DocumentError as exc:
        raise Problem(
            422,
            "document-unreadable",
            "Document has no usable text",
            str(exc),
            errors=[{"loc": ["body"], "pointer": "/", "message": str(exc), "type": "document"}],
        ) from None


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "payload-too-large",
        "Payload too large",
        f"the document is larger than the limit of {limit} bytes",
        max_bytes=limit,
    )


async def _form_file(request: Request, limit: int) -> tuple[str, DocumentKind, bytes]:
    """The name, kind and bytes of the file in a form's ``file`` part."""
    form = await bounded_form(request, limit, lambda: _too_large(limit))
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Problem(
                422,
                "validation-error",
                "Invalid request",
                "send the document in a form part named `file`",
                errors=[
                    {
                        "loc": ["body", "file"],
                        "pointer": "/file",
                        "message": "a file part named `file` is required",
                        "type": "missing",
                    }
                ],
            )
        if (upload.size or 0) > limit:
            raise _too_large(limit)
        field = form.get("name")
        name = _checked_name(field if isinstance(field, str) and field else upload.filename or "")
        kind = _kind(upload.content_type or "", upload.filename or name)
        return name, kind, await upload.read()
    finally:
        await form.close()


def _within_quota(svc: Services, used: int, size: int) -> None:
    quota = svc.settings.tenant_storage_bytes
    if used + size > quota:
        raise Problem(
            413,
            "storage-quota-exceeded",
            "Storage quota exceeded",
            f"this document of {size} bytes would take the tenant's stored files past its "
            f"storage quota ({used} of {quota} bytes used); delete some first",
            used_bytes=used,
            quota_bytes=quota,
        )


@operation(
    id="listCorpusDocuments",
    summary="List a corpus's documents",
    tag=AGENTS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("Newest first; follow links.next for more.", DocumentPage)},
    errors=(*SECURED, "400", "404", "422"),
    description=_NEEDS_READ,
    parameters=(CORPUS_ID, LIMIT, CURSOR),
)
async def list_documents(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)
    corpus_id = request.path_params["corpus_id"]

    def fetch(session: Session, limit: int, cursor: str | None) -> Page[CorpusDocument]:
        repository = CorpusRepository(session, principal.tenant)
        _corpus(repository, corpus_id)
        return repository.documents(corpus_id, limit=limit, cursor=cursor)

    return await stored_page(request, services(request).sessions, fetch, document_view)


@operation(
    id="getCorpusDocument",
    summary="A document of a corpus",
    tag=AGENTS,
    permission=Permission.AGENTS_READ,
    responses={200: Reply("The document.", DocumentView)},
    errors=(*SECURED, "404"),
    description=_NEEDS_READ,
    parameters=(CORPUS_ID, DOCUMENT_ID),
)
async def get_document(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)
    svc = services(request)
    corpus_id = request.path_params["corpus_id"]
    document_id = request.path_params["document_id"]

    def load() -> dict[str, Any]:
        with svc.sessions() as session:
            repository = CorpusRepository(session, principal.tenant)
            return document_view(_document(repository, corpus_id, document_id))

    return json_reply(await anyio.to_thread.run_sync(load))


@operation(
    id="getCorpusDocumentText",
    summary="The text extracted from a document",
    tag=AGENTS,
    permission=Permission.AGENTS_READ,
    responses={
        200: Reply(
            "UTF-8 text; a research run's `start` and `end` are character offsets into it.",
            content={"text/plain": {"schema": {"type": "string"}}},
        )
    },
    errors=(*SECURED, "404"),
    description=_NEEDS_READ,
    parameters=(CORPUS_ID, DOCUMENT_ID),
)
async def get_document_text(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_READ)
    svc = services(request)
    corpus_id = request.path_params["corpus_id"]
    document_id = request.path_params["document_id"]

    def load() -> str:
        with svc.sessions() as session:
            repository = CorpusRepository(session, principal.tenant)
            document = _document(repository, corpus_id, document_id)
        data = svc.artifacts.get(document.artifact_key, document.sha256)
        return extract_text(data, DocumentKind(document.media_type)).text

    text = await anyio.to_thread.run_sync(load)
    return Response(text, media_type="text/plain; charset=utf-8")


@operation(
    id="deleteCorpusDocument",
    summary="Delete a document from a corpus",
    tag=AGENTS,
    permission=Permission.AGENTS_MANAGE,
    responses={204: Reply("Deleted, with its stored file; the corpus's version goes up.")},
    errors=(*SECURED, "404"),
    description=f"{_NEEDS_MANAGE} Audited as `corpus.document.delete`.",
    parameters=(CORPUS_ID, DOCUMENT_ID),
)
async def delete_document(request: Request) -> Response:
    principal = require(request, Permission.AGENTS_MANAGE)
    svc = services(request)
    corpus_id = request.path_params["corpus_id"]
    document_id = request.path_params["document_id"]

    def remove() -> None:
        with svc.sessions.begin() as session:
            repository = CorpusRepository(session, principal.tenant)
            corpus = _corpus(repository, corpus_id)
            document = repository.document(corpus_id, document_id)
            if document is None:
                raise _no_document(document_id)
            name = document.name
            key = repository.remove_document(corpus, document)
            record_change(
                session,
                request,
                "corpus.document.delete",
                tenant=principal.tenant,
                actor=principal.actor,
                detail={"corpus_id": corpus_id, "document_id": document_id, "name": name},
            )
        # Only once the row is gone: a rollback must not leave a row without its file.
        svc.artifacts.delete(key)

    await anyio.to_thread.run_sync(remove)
    return Response(status_code=204)


_ONE = f"{_BASE}/{{corpus_id}}"
_DOCS = f"{_ONE}/documents"
_DOC = f"{_DOCS}/{{document_id}}"
routes = [
    Route(_BASE, create_corpus, methods=["POST"]),
    Route(_BASE, list_corpora, methods=["GET"]),
    Route(_ONE, get_corpus, methods=["GET"]),
    Route(_ONE, delete_corpus, methods=["DELETE"]),
    Route(_DOCS, upload_document, methods=["POST"]),
    Route(_DOCS, list_documents, methods=["GET"]),
    Route(_DOC, get_document, methods=["GET"]),
    Route(f"{_DOC}/text", get_document_text, methods=["GET"]),
    Route(_DOC, delete_document, methods=["DELETE"]),
]
