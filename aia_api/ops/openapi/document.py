"""The whole document: what every route declares, and what the API says of itself."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import metadata

from starlette.routing import BaseRoute

from aia_api.http.openapi import ERRORS, HEADERS, Json
from aia_api.http.responses import ProblemDetails
from aia_api.ops.openapi.assembly import Registry, assemble
from aia_workers.backbone.catalog import CATALOG

__all__ = ["API_VERSION", "build_openapi", "openapi_document"]

API_VERSION = "v1"


def build_openapi(routes: Sequence[BaseRoute] | None = None) -> Json:
    """A fresh OpenAPI 3.1 document of ``routes`` (by default every route the app mounts).

    Raises Undocumented for a route whose handler declares no operation.
    """
    if routes is None:
        from aia_api.app import ROUTES

        routes = ROUTES
    assembly = assemble(routes)
    registry = Registry.of(
        [
            *(pair for source in assembly.sources() for pair in source.models()),
            *((t.payload, "validation") for t in CATALOG.values()),
            # Every shared problem response refers to it.
            (ProblemDetails, "serialization"),
        ]
    )
    paths = assembly.paths(registry)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AIA API",
            "version": _package_version(),
            "summary": "Agents, ML training, drift checks and webhooks as distributed tasks.",
            "description": (
                "Submit tasks, read and cancel them, follow their events over SSE or one "
                "WebSocket. Every path but /health, /docs, /openapi.json and /v1/auth/* needs "
                "credentials: `Authorization: Bearer <access token or API key>`, or "
                "`X-API-Key: <API key>`. Errors are RFC 9457 problems "
                "(`application/problem+json`)."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "x-api-version": API_VERSION,
        "x-task-types": {
            name: {
                "queue": t.queue.value,
                "permission": t.permission,
                "time_limit_seconds": t.time_limit_seconds,
                "description": t.description,
                "payload": registry.ref(t.payload),
            }
            for name, t in sorted(CATALOG.items())
        },
        "tags": [{"name": tag.name, "description": tag.description} for tag in assembly.tags()],
        "paths": paths,
        "components": {
            # After the paths: a declaration may add schemas while it renders.
            "schemas": dict(sorted(registry.defs.items())),
            "parameters": assembly.parameters(),
            "headers": HEADERS,
            "responses": {name: response for name, response in ERRORS.values()},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT access token, or an API key (aia_...)",
                    "description": "From /v1/auth/token, or an API key.",
                },
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "An API key (aia_...), from /v1/keys or `aia keys create`.",
                },
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    }


@functools.cache
def openapi_document() -> Json:
    """The document, built once per process; callers must not change it."""
    return build_openapi()


def _package_version() -> str:
    try:
        return metadata.version("aia")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree, not installed
        return "0.0.0"
