"""The whole document, assembled from components and paths."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from starlette.routing import BaseRoute

from aia_api.http.responses import ProblemDetails
from aia_api.ops.openapi.assembly import Registry, assemble
from aia_api.ops.openapi.components import (
    _ERRORS,
    _HEADERS,
    _PARAMETERS,
    API_VERSION,
    Json,
    _legacy_models,
    _package_version,
    _ref,
    _submit_variants,
)
from aia_api.ops.openapi.deadletter_paths import _dead_letter_paths
from aia_api.ops.openapi.ml_paths import _ml_paths
from aia_api.ops.openapi.paths import (
    _audit_paths,
    _auth_paths,
    _dataset_paths,
    _key_paths,
    _stream_paths,
    _task_paths,
)
from aia_api.ops.openapi.webhook_paths import _webhook_paths
from aia_workers.backbone.catalog import CATALOG

__all__ = ["API_VERSION", "build_openapi", "openapi_document"]

# -- the document -------------------------------------------------------------------------


def build_openapi(routes: Sequence[BaseRoute] | None = None) -> Json:
    """A fresh OpenAPI 3.1 document of ``routes`` (by default every route the app mounts)."""
    if routes is None:
        from aia_api.app import ROUTES

        routes = ROUTES
    assembly = assemble(routes, strict=False)
    legacy_models, _ = _legacy_models()
    registry = Registry.of(
        [
            *(pair for source in assembly.sources() for pair in source.models()),
            *((t.payload, "validation") for t in CATALOG.values()),
            (ProblemDetails, "serialization"),
            *legacy_models,
        ]
    )
    schemas, names = registry.defs, registry.names
    submit_schema = _submit_variants(schemas, names)
    declared_paths = assembly.paths(registry)
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
                "payload": _ref(names[t.payload]),
            }
            for name, t in sorted(CATALOG.items())
        },
        "tags": [
            {"name": "tasks", "description": "Submit, read, list and cancel tasks."},
            {
                "name": "dead-letters",
                "description": "Tasks quarantined because their worker process kept dying: "
                "read, replay or discard them.",
            },
            {"name": "streams", "description": "Task events, as SSE or over a WebSocket."},
            {"name": "auth", "description": "Tokens for users."},
            {"name": "keys", "description": "API keys for services."},
            {
                "name": "ml",
                "description": "Datasets, experiments, training runs, the model registry, "
                "predictions.",
            },
            {
                "name": "webhooks",
                "description": "Signed deliveries of events to your endpoints, with retries.",
            },
            {"name": "ops", "description": "Health, status and metrics."},
            {"name": "docs", "description": "This document."},
        ],
        "paths": _merge(
            {
                **_task_paths(submit_schema),
                **_dead_letter_paths(),
                **_stream_paths(),
                **_auth_paths(),
                **_key_paths(),
                **_audit_paths(),
                **_dataset_paths(),
                **_ml_paths(),
                **_webhook_paths(),
            },
            declared_paths,
        ),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "parameters": {**_PARAMETERS, **assembly.parameters()},
            "headers": _HEADERS,
            "responses": {name: response for name, response in _ERRORS.values()},
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


def _merge(legacy: Json, declared: Json) -> Json:
    merged = {path: dict(item) for path, item in legacy.items()}
    for path, item in declared.items():
        merged.setdefault(path, {}).update(item)
    return merged


@functools.cache
def openapi_document() -> Json:
    """The document, built once per process; callers must not change it."""
    return build_openapi()
