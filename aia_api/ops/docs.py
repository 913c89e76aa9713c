"""``/openapi.json`` and ``/docs``: the API's OpenAPI document, and the same for people.

The page is plain server-rendered HTML with its own few lines of CSS: no
script, no CDN, nothing fetched, so it works on a machine without internet.
Its Content-Security-Policy allows that one stylesheet (by its hash) and
nothing else.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from html import escape
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from aia_api.http.openapi import Reply, Tag, operation
from aia_api.ops.openapi import openapi_document

__all__ = ["DOCS_POLICY", "render_docs", "routes"]

_METHODS = ("get", "post", "put", "patch", "delete")

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2.5rem}
section{border:1px solid #ddd;border-radius:6px;padding:.2rem 1rem 1rem;margin:1rem 0}
.m{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}
.get{color:#0a6}.post{color:#06c}.delete{color:#c33}.ws{color:#839}
code,pre{font:13px/1.35 ui-monospace,monospace;background:#f5f5f5}
pre{padding:.6rem;overflow:auto;max-height:28rem}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
nav a{margin-right:1rem}
""".strip()

_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
DOCS_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)


def _pre(value: Any) -> str:
    return f"<pre>{escape(json.dumps(value, indent=2))}</pre>"


def _schema(schema: Any) -> str:
    """A reference to a named schema as a link to it; any other schema as JSON."""
    ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
    if len(schema) == 1 and ref.startswith("#/components/schemas/"):
        name = escape(ref.rsplit("/", 1)[-1])
        return f'<p>Schema: <a href="#schema-{name}"><code>{name}</code></a></p>'
    return _pre(schema)


def _parameters(params: list[dict[str, Any]], components: dict[str, Any]) -> str:
    rows = []
    for p in params:
        if "$ref" in p:
            p = components["parameters"][p["$ref"].rsplit("/", 1)[-1]]
        rows.append(
            "<tr>"
            f"<td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
            f"<td>{'yes' if p.get('required') else 'no'}</td>"
            f"<td><code>{escape(json.dumps(p.get('schema', {})))}</code></td>"
            f"<td>{escape(p.get('description', ''))}</td>"
            "</tr>"
        )
    head = "<tr><th>name</th><th>in</th><th>required</th><th>schema</th><th>description</th></tr>"
    return f"<h4>Parameters</h4><table>{head}{''.join(rows)}</table>"


def _responses(responses: dict[str, Any], components: dict[str, Any]) -> str:
    parts = ["<h4>Responses</h4><ul>"]
    for code, response in responses.items():
        name = ""
        if "$ref" in response:
            name = response["$ref"].rsplit("/", 1)[-1]
            response = components["responses"][name]
        media = ", ".join(response.get("content", {})) or "no body"
        parts.append(
            f"<li><b>{escape(code)}</b> {escape(response['description'])} "
            f"<small>({escape(media)}{'; ' + escape(name) if name else ''})</small>"
        )
        bodies = [c["schema"] for c in response.get("content", {}).values() if "schema" in c]
        if not name:
            parts.extend(_schema(body) for body in bodies)
        parts.append("</li>")
    parts.append("</ul>")
    return "".join(parts)


def _operation(path: str, method: str, op: dict[str, Any], components: dict[str, Any]) -> str:
    public = op.get("security") == []
    out = [
        f'<section id="{escape(op["operationId"])}">',
        f'<h3><span class="m {method}">{method}</span> <code>{escape(path)}</code></h3>',
        f"<p><b>{escape(op.get('summary', ''))}</b>{' (public)' if public else ''}. "
        f"{escape(op.get('description', ''))}</p>",
    ]
    if op.get("parameters"):
        out.append(_parameters(op["parameters"], components))
    body = op.get("requestBody")
    if body:
        for media, content in body["content"].items():
            out.append(f"<h4>Request body <small>({escape(media)})</small></h4>")
            out.append(_schema(content["schema"]))
    out.append(_responses(op["responses"], components))
    out.append("</section>")
    return "".join(out)


def render_docs(doc: dict[str, Any]) -> str:
    """The whole document as one HTML page."""
    info = doc["info"]
    components = doc["components"]
    sections: list[str] = []
    nav: list[str] = []
    for path, item in doc["paths"].items():
        for method in _METHODS:
            if method in item:
                op = item[method]
                nav.append(
                    f'<li><a href="#{escape(op["operationId"])}">{method.upper()} '
                    f"{escape(path)}</a></li>"
                )
                sections.append(_operation(path, method, op, components))
        if "x-websocket" in item:
            anchor = "ws-" + path.strip("/").replace("/", "-")
            nav.append(f'<li><a href="#{anchor}">WS {escape(path)}</a></li>')
            sections.append(
                f'<section id="{anchor}"><h3><span class="m ws">ws</span> '
                f"<code>{escape(path)}</code></h3><p><b>{escape(item.get('summary', ''))}</b>. "
                f"{escape(item.get('description', ''))}</p>{_pre(item['x-websocket'])}</section>"
            )
    schemas = "".join(
        f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>{_pre(schema)}'
        for name, schema in components["schemas"].items()
    )
    security = _pre(components["securitySchemes"])
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(info['title'])} {escape(info['version'])}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{escape(info['title'])} <small>{escape(info['version'])} "
        f"({escape(doc.get('x-api-version', ''))})</small></h1>"
        f"<p>{escape(info.get('description', ''))}</p>"
        '<nav><a href="/openapi.json">openapi.json</a><a href="#schemas">schemas</a></nav>'
        f"<h2>Operations</h2><ul>{''.join(nav)}</ul>{''.join(sections)}"
        f"<h2>Authentication</h2>{security}"
        f'<h2 id="schemas">Schemas</h2>{schemas}'
        "</body></html>"
    )


@functools.cache
def _document_bytes() -> bytes:
    return orjson.dumps(openapi_document())


@functools.cache
def _docs_html() -> str:
    return render_docs(openapi_document())


_DOCS = Tag("docs", "This document.")


@operation(
    id="openapi",
    summary="This document",
    tag=_DOCS,
    responses={
        200: Reply(
            "The OpenAPI 3.1 document.",
            content={"application/json": {"schema": {"type": "object"}}},
        )
    },
    public=True,
)
async def openapi_json(_: Request) -> Response:
    return Response(_document_bytes(), media_type="application/json")


@operation(
    id="docs",
    summary="This document, for people",
    tag=_DOCS,
    responses={
        200: Reply(
            "A self-contained HTML page (no external assets).",
            content={"text/html": {"schema": {"type": "string"}}},
        )
    },
    public=True,
)
async def docs(_: Request) -> Response:
    return HTMLResponse(_docs_html(), headers={"Content-Security-Policy": DOCS_POLICY})


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
]
