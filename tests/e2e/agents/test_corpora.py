"""``/v1/agents/corpora`` over HTTP: corpora and their documents, stored, listed, refused."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Stack

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
CORPUS = Path(__file__).parents[2] / "data" / "agents" / "corpus"


def _corpus(api: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("name", f"corpus-{uuid.uuid4().hex[:8]}")
    response = api.post("/v1/agents/corpora", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _upload_raw(
    api: httpx.Client, corpus: dict[str, Any], name: str, data: bytes, content_type: str
) -> httpx.Response:
    return api.post(
        corpus["links"]["documents"],
        params={"name": name},
        content=data,
        headers={"content-type": content_type},
    )


def test_a_corpus_gets_documents_raw_and_multipart(
    redis_stack: Stack, redis_api: httpx.Client
) -> None:
    corpus = _corpus(redis_api, description="Town notes")
    assert (corpus["version"], corpus["documents"], corpus["size_bytes"]) == (1, 0, 0)
    markdown = (CORPUS / "kestrel_point_lighthouse.md").read_bytes()
    raw = _upload_raw(redis_api, corpus, "lighthouse", markdown, "text/markdown; charset=utf-8")
    assert raw.status_code == 201, raw.text
    doc = raw.json()
    assert raw.headers["location"] == doc["links"]["self"]
    assert doc["media_type"] == "text/markdown"
    assert doc["sha256"] == hashlib.sha256(markdown).hexdigest()
    assert doc["size_bytes"] == len(markdown)
    html = (CORPUS / "harbour_museum.html").read_bytes()
    form = redis_api.post(
        corpus["links"]["documents"],
        files={"file": ("harbour_museum.html", html, "application/octet-stream")},
    )
    assert form.status_code == 201, form.text
    assert (form.json()["name"], form.json()["media_type"]) == ("harbour_museum.html", "text/html")
    # The text citations point into, as long as the server measured it.
    text = redis_api.get(form.json()["links"]["text"])
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain")
    assert len(text.text) == form.json()["text_chars"]
    assert "The museum is closed on Mondays" in text.text
    assert "<p>" not in text.text
    stored = Path(redis_stack.env["AIA_DATA_HOME"]) / "artifacts" / "default" / "corpora"
    assert (stored / corpus["id"] / f"{doc['id']}.md").read_bytes() == markdown

    now = redis_api.get(corpus["links"]["self"]).json()
    assert (now["version"], now["documents"]) == (3, 2)
    assert now["size_bytes"] == len(markdown) + len(html)
    listed = redis_api.get(corpus["links"]["documents"]).json()["items"]
    assert [d["id"] for d in listed] == [form.json()["id"], doc["id"]]
    assert redis_api.get(doc["links"]["self"]).json() == doc
    assert corpus["id"] in [c["id"] for c in redis_api.get("/v1/agents/corpora").json()["items"]]

    assert redis_api.delete(doc["links"]["self"]).status_code == 204
    assert redis_api.get(doc["links"]["self"]).status_code == 404
    assert not (stored / corpus["id"] / f"{doc['id']}.md").exists()
    assert redis_api.get(corpus["links"]["self"]).json()["version"] == 4

    assert redis_api.delete(corpus["links"]["self"]).status_code == 204
    assert redis_api.get(corpus["links"]["self"]).status_code == 404
    assert not list((stored / corpus["id"]).iterdir())
    audit = redis_api.get("/v1/audit", params={"action": "corpus.document.add"}).json()
    assert doc["id"] in [e["detail"]["document_id"] for e in audit["items"]]


@pytest.mark.parametrize(
    ("content", "content_type", "name", "status", "detail"),
    [
        (b"%PDF-1.7", "application/pdf", "a.pdf", 415, "text/markdown"),
        (b"", "text/plain", "empty", 422, "empty"),
        (b"caf\xe9", "text/plain", "latin", 422, "UTF-8"),
        (b"<style>p{}</style>", "text/html", "bare", 422, "no text"),
        (b"hello", "text/plain", "", 422, "?name="),
    ],
)
def test_a_document_that_cannot_be_used_is_a_clear_problem(
    redis_api: httpx.Client,
    content: bytes,
    content_type: str,
    name: str,
    status: int,
    detail: str,
) -> None:
    corpus = _corpus(redis_api)
    response = _upload_raw(redis_api, corpus, name, content, content_type)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert detail in response.json()["detail"]
    assert redis_api.get(corpus["links"]["self"]).json()["documents"] == 0


def test_a_name_in_use_and_a_missing_corpus(redis_api: httpx.Client) -> None:
    corpus = _corpus(redis_api)
    again = redis_api.post("/v1/agents/corpora", json={"name": corpus["name"]})
    assert again.status_code == 409
    assert again.json()["type"] == "urn:aia:problem:corpus-name-taken"
    missing = _upload_raw(
        redis_api,
        {"links": {"documents": "/v1/agents/corpora/nope/documents"}},
        "x",
        b"x",
        "text/plain",
    )
    assert missing.status_code == 404
    assert redis_api.post("/v1/agents/corpora", json={"name": ""}).status_code == 422


def test_an_oversized_document_is_413(redis_stack: Stack, redis_api: httpx.Client) -> None:
    corpus = _corpus(redis_api)
    proc, url = redis_stack.start_api(env={"AIA_AGENT_DOCUMENT_MAX_BYTES": "2048"})
    try:
        auth = {"Authorization": f"Bearer {redis_stack.api_key}"}
        raw = httpx.post(
            f"{url}{corpus['links']['documents']}",
            params={"name": "big"},
            content=b"Words. " * 1000,
            headers={"content-type": "text/plain", **auth},
        )
        assert raw.status_code == 413
        assert raw.json()["max_bytes"] == 2048
        form = httpx.post(
            f"{url}{corpus['links']['documents']}",
            files={"file": ("big.txt", b"Words. " * 20_000, "text/plain")},
            headers=auth,
        )
        assert form.status_code == 413
    finally:
        proc.stop()


def test_corpora_are_tenant_scoped_and_need_permissions(
    redis_stack: Stack, redis_api: httpx.Client
) -> None:
    corpus = _corpus(redis_api)
    base = redis_stack.api_url
    other = {"Authorization": f"Bearer {redis_stack.create_key('admin', tenant='elsewhere')}"}
    assert httpx.get(f"{base}{corpus['links']['self']}", headers=other).status_code == 404
    listed = httpx.get(f"{base}/v1/agents/corpora", headers=other).json()["items"]
    assert corpus["id"] not in [c["id"] for c in listed]
    viewer = {"Authorization": f"Bearer {redis_stack.create_key('viewer')}"}
    assert httpx.get(f"{base}{corpus['links']['self']}", headers=viewer).status_code == 200
    refused = httpx.post(
        f"{base}{corpus['links']['documents']}",
        params={"name": "x"},
        content=b"Some text.",
        headers={"content-type": "text/plain", **viewer},
    )
    assert refused.status_code == 403
    assert refused.json()["permission"] == "agents:manage"
    assert httpx.delete(f"{base}{corpus['links']['self']}", headers=viewer).status_code == 403
