"""The API's OpenAPI 3.1 document, built from the request and response models.

Paths and their error responses are declared here, next to each other, in the
order of the route modules; the schemas come from the pydantic models (request
models beside their routes, response models in aia_api.responses, payloads from
the task catalog). tests/e2e/test_openapi.py checks that every route of the app
is described and fuzzes the running API against this document.
"""

from __future__ import annotations

import copy
import functools
from importlib import metadata
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from aia_api.problems import PROBLEM_JSON
from aia_api.responses import (
    AuditPage,
    Health,
    KeyList,
    MfaEnabled,
    MfaEnrollment,
    NewKey,
    ProblemDetails,
    StatusReport,
    TaskEvent,
    TaskPage,
    TaskView,
    TokenResponse,
    WsCommand,
    WsMessage,
)
from aia_api.routes.auth import CodeRequest, RefreshRequest, TokenRequest
from aia_api.routes.keys import KeyRequest
from aia_api.schemas import SubmitRequest
from aia_workers.catalog import CATALOG
from aia_workers.states import Status

__all__ = ["API_VERSION", "build_openapi", "openapi_document"]

API_VERSION = "v1"
_REF = "#/components/schemas/{model}"
_MAX_PAGE = 200

Json = dict[str, Any]


def _package_version() -> str:
    try:
        return metadata.version("aia")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree, not installed
        return "0.0.0"


def _ref(name: str, kind: str = "schemas") -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


# -- schemas ----------------------------------------------------------------------

_REQUESTS: tuple[type[BaseModel], ...] = (
    SubmitRequest,
    TokenRequest,
    RefreshRequest,
    CodeRequest,
    KeyRequest,
)
_RESPONSES: tuple[type[BaseModel], ...] = (
    TaskView,
    TaskPage,
    TaskEvent,
    TokenResponse,
    MfaEnrollment,
    MfaEnabled,
    NewKey,
    KeyList,
    AuditPage,
    Health,
    StatusReport,
    ProblemDetails,
    WsCommand,
    WsMessage,
)


def _component_schemas() -> tuple[Json, dict[type[BaseModel], str]]:
    """Every model's schema under components/schemas, and each model's component name."""
    payloads = tuple(dict.fromkeys(t.payload for t in CATALOG.values()))
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((m, "validation") for m in (*_REQUESTS, *payloads)),
        *((m, "serialization") for m in _RESPONSES),
    ]
    refs, top = models_json_schema(modes, ref_template=_REF)
    names: dict[type[BaseModel], str] = {}
    for (model, _), ref in refs.items():
        if isinstance(model, type) and issubclass(model, BaseModel):
            names[model] = str(ref["$ref"]).rsplit("/", 1)[-1]
    return dict(top.get("$defs", {})), names


def _submit_variants(schemas: Json, names: dict[type[BaseModel], str]) -> Json:
    """One request schema per task type, its payload's own schema in place of the object."""
    base = schemas[names[SubmitRequest]]
    mapping: dict[str, str] = {}
    for type_name, task_type in sorted(CATALOG.items()):
        payload = names[task_type.payload]
        properties = copy.deepcopy(base["properties"])
        properties["type"] = {"type": "string", "const": type_name}
        properties["payload"] = _ref(payload)
        required = ["type"]
        if schemas[payload].get("required"):
            required.append("payload")
        component = f"SubmitRequest.{type_name}"
        schemas[component] = {
            "title": f"Submit {type_name}",
            "description": (
                f"{task_type.description} Runs on the `{task_type.queue.value}` queue, needs "
                f"`{task_type.permission}`, at most {task_type.time_limit_seconds} s."
            ),
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        mapping[type_name] = _ref(component)["$ref"]
    return {
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }


# -- parameters, headers, responses -------------------------------------------------


def _path_param(name: str, description: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^/]+$"},
    }


_PARAMETERS: Json = {
    "TaskId": _path_param("task_id", "The task's id, as returned by submit."),
    "KeyId": _path_param("key_id", "The API key's id (not the key itself)."),
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            "Submitting again with the same key and body returns the first task "
            "(`Idempotent-Replayed: true`); with another body, 409."
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    "LastEventId": {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "description": "Resume after this event (`seq`); browsers send it on reconnect.",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    },
    "After": {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "Like Last-Event-ID, for clients that cannot set headers.",
        "schema": {"type": "integer", "minimum": 0, "maximum": 10**18},
    },
    "Status": {
        "name": "status",
        "in": "query",
        "required": False,
        "description": "Only tasks in these statuses; repeat for several.",
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "items": {"type": "string", "enum": [s.value for s in Status]}},
    },
    "Type": {
        "name": "type",
        "in": "query",
        "required": False,
        "description": "Only tasks of these types; repeat for several.",
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "items": {"type": "string"}},
    },
    "Action": {
        "name": "action",
        "in": "query",
        "required": False,
        "description": "Only events of these actions; repeat for several.",
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "items": {"type": "string"}},
    },
    "Outcome": {
        "name": "outcome",
        "in": "query",
        "required": False,
        "description": "Only events with this outcome.",
        "schema": {"type": "string", "enum": ["success", "failure", "locked"]},
    },
    "Limit": {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"Page size, 1 to {_MAX_PAGE}.",
        "schema": {"type": "integer", "minimum": 1, "maximum": _MAX_PAGE, "default": 50},
    },
    "Cursor": {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "`next_cursor` of the previous page.",
        "schema": {"type": "string"},
    },
}


def _int_header(description: str) -> Json:
    return {"description": description, "schema": {"type": "integer", "minimum": 0}}


_HEADERS: Json = {
    "Retry-After": _int_header("Seconds to wait before trying again."),
    "RateLimit-Limit": _int_header("Requests allowed in the current one-minute window."),
    "RateLimit-Remaining": _int_header("Requests left in the current window."),
    "RateLimit-Reset": _int_header("Seconds until the window starts over."),
    "Location": {"description": "The created resource.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when an Idempotency-Key matched an earlier submit.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "WWW-Authenticate": {"description": '`Bearer realm="aia"`.', "schema": {"type": "string"}},
}

_RATE_HEADERS = {h: _ref(h, "headers") for h in _HEADERS if h.startswith("RateLimit-")}


def _problem(description: str, *headers: str) -> Json:
    response: Json = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": _ref("ProblemDetails")}},
    }
    if headers:
        response["headers"] = {h: _ref(h, "headers") for h in headers}
    return response


_ERRORS: dict[str, tuple[str, Json]] = {
    "400": ("BadRequest", _problem("Malformed JSON, or a malformed header or cursor.")),
    "401": (
        "Unauthenticated",
        _problem("No credentials, or they are invalid, revoked or expired.", "WWW-Authenticate"),
    ),
    "403": ("Forbidden", _problem("The caller's role lacks the permission (named in the body).")),
    "404": ("NotFound", _problem("No such resource in the caller's tenant.")),
    "409": ("Conflict", _problem("The request conflicts with the resource's state.")),
    "413": ("PayloadTooLarge", _problem("The body is larger than the server's limit.")),
    "415": ("UnsupportedMediaType", _problem("The body is not sent as application/json.")),
    "422": ("ValidationError", _problem("The request does not match its schema; see `errors`.")),
    "429": (
        "TooManyRequests",
        _problem(
            "Over the rate limit (per principal; per client address on /v1/auth), "
            "or, on submit, too many of the tenant's tasks in flight.",
            "Retry-After",
            *_RATE_HEADERS,
        ),
    ),
    "503": (
        "ServiceUnavailable",
        _problem("A backing service (Redis, database, broker) is down; retry.", "Retry-After"),
    ),
}


def _json(schema: str, description: str, **headers: Json) -> Json:
    response: Json = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
    }
    if headers:
        response["headers"] = headers
    return response


def _body(schema: Json, description: str) -> Json:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


_SECURED = ("401", "403", "429", "503")
_WITH_BODY = ("400", "413", "415", "422")


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: Json,
    *,
    errors: tuple[str, ...] = (),
    description: str | None = None,
    parameters: list[str] | None = None,
    body: Json | None = None,
    public: bool = False,
) -> Json:
    operation: Json = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = [_ref(p, "parameters") for p in parameters]
    if body is not None:
        operation["requestBody"] = body
    all_responses = dict(responses)
    for code in sorted(set(errors)):
        all_responses[code] = _ref(_ERRORS[code][0], "responses")
    operation["responses"] = all_responses
    if public:
        operation["security"] = []
    return operation


# -- paths ----------------------------------------------------------------------------


def _task_paths(submit_schema: Json) -> Json:
    task_types = ", ".join(f"`{name}`" for name in sorted(CATALOG))
    return {
        "/v1/tasks": {
            "post": _operation(
                "submitTask",
                "Submit a task",
                "tasks",
                {
                    "202": _json(
                        "TaskView",
                        "Accepted and queued (or, on a replayed Idempotency-Key, the first task).",
                        Location=_ref("Location", "headers"),
                        **{"Idempotent-Replayed": _ref("Idempotent-Replayed", "headers")},
                    )
                },
                errors=(*_SECURED, *_WITH_BODY, "409"),
                description=(
                    f"Task types: {task_types}; each has its own payload schema (the request "
                    "body is one of `SubmitRequest.<type>`). Needs `tasks:submit`. 409 when the "
                    "Idempotency-Key was used with another body; 429 also when the tenant has "
                    "too many tasks in flight; 503 when the broker refused the task."
                ),
                parameters=["IdempotencyKey"],
                body=_body(submit_schema, "What to run, with what payload, and when."),
            ),
            "get": _operation(
                "listTasks",
                "List tasks",
                "tasks",
                {"200": _json("TaskPage", "A page of the tenant's recorded tasks, newest first.")},
                errors=(*_SECURED, "400", "422"),
                description=(
                    "Reads the recorded history (slightly behind the live record). "
                    "Needs `tasks:read`. 400 for a cursor this API did not make."
                ),
                parameters=["Status", "Type", "Limit", "Cursor"],
            ),
        },
        "/v1/tasks/{task_id}": {
            "get": _operation(
                "getTask",
                "Read a task",
                "tasks",
                {"200": _json("TaskView", "The task.")},
                errors=(*_SECURED, "404"),
                description="Needs `tasks:read`. Tasks of other tenants are 404 too.",
                parameters=["TaskId"],
            )
        },
        "/v1/tasks/{task_id}/cancel": {
            "post": _operation(
                "cancelTask",
                "Cancel a task",
                "tasks",
                {"202": _json("TaskView", "Cancelled; a running body is stopped.")},
                errors=(*_SECURED, "404", "409"),
                description="Needs `tasks:cancel`. 409 when the task has already finished.",
                parameters=["TaskId"],
            )
        },
    }


_SSE_DESCRIPTION = (
    "Server-Sent Events of one task: first what happened after Last-Event-ID (or `?after=`), "
    "then live events, until the task ends. Each event is `id: <seq>`, `event: <name>` "
    "(queued, started, progress, retrying, succeeded, failed, cancelled) and "
    "`data: <TaskEvent JSON>`; comments (`: keep-alive`) keep the connection open. An "
    "`event: error` with a problem in `data` says the stream was dropped: reconnect with "
    "Last-Event-ID. Needs `tasks:read`."
)

_WS_DESCRIPTION = (
    "A WebSocket (OpenAPI has no operation for one, so it is described here and in "
    "`x-websocket`): one connection follows many tasks. Authenticate with the Authorization "
    "or X-API-Key header, or `?access_token=` where headers cannot be set (browsers). Send "
    "`WsCommand` messages (`subscribe` with an optional `after`, `unsubscribe`); receive "
    "`WsMessage`s: `subscribed`, `unsubscribed`, `event` (a TaskEvent's fields), `error`. "
    "Close codes: 1008 unauthenticated or forbidden, 1011 server error or lost stream, "
    "1013 rate limited. Needs `tasks:read`."
)


def _stream_paths() -> Json:
    return {
        "/v1/tasks/{task_id}/events": {
            "get": _operation(
                "taskEvents",
                "Follow a task's events (SSE)",
                "streams",
                {
                    "200": {
                        "description": "An event stream; each `data:` is a TaskEvent.",
                        "content": {
                            "text/event-stream": {
                                "schema": {"type": "string"},
                                "x-event-schema": _ref("TaskEvent"),
                            }
                        },
                    }
                },
                errors=(*_SECURED, "400", "404"),
                description=_SSE_DESCRIPTION,
                parameters=["TaskId", "LastEventId", "After"],
            )
        },
        "/v1/ws": {
            "summary": "Follow many tasks (WebSocket)",
            "description": _WS_DESCRIPTION,
            "x-websocket": {
                "url": "/v1/ws",
                "client-messages": _ref("WsCommand"),
                "server-messages": _ref("WsMessage"),
                "query": {"access_token": "an access token or API key, when headers cannot be set"},
            },
        },
    }


def _ops_paths() -> Json:
    return {
        "/health": {
            "get": _operation(
                "health",
                "Liveness",
                "ops",
                {"200": _json("Health", "The API process answers.")},
                description="Public. Says nothing about the dependencies: see /status.",
                public=True,
            )
        },
        "/status": {
            "get": _operation(
                "status",
                "Dependency status",
                "ops",
                {
                    "200": _json("StatusReport", "Every dependency is reachable."),
                    "503": {
                        "description": (
                            "A dependency is down (a StatusReport with `degraded`), or the "
                            "caller could not be checked (a problem)."
                        ),
                        "content": {
                            "application/json": {"schema": _ref("StatusReport")},
                            PROBLEM_JSON: {"schema": _ref("ProblemDetails")},
                        },
                    },
                },
                errors=("401", "403", "429"),
                description="The database, Redis, the broker's queue depths, workers online.",
            )
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "Prometheus metrics",
                "ops",
                {
                    "200": {
                        "description": "The Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                errors=("401", "403", "503"),
                description=(
                    "Needs `status:read`, or `Authorization: Bearer <AIA_METRICS_TOKEN>` "
                    "when the scrape token is set."
                ),
            )
        },
    }


def _auth_paths() -> Json:
    refresh_body = _body(_ref("RefreshRequest"), "A refresh token from /v1/auth/token.")
    body_errors = (*_WITH_BODY, "429", "503")
    return {
        "/v1/auth/token": {
            "post": _operation(
                "login",
                "Log in",
                "auth",
                {"200": _json("TokenResponse", "An access token and a refresh token.")},
                errors=(*body_errors, "401"),
                description=(
                    "Public. Rate limited per client address; repeated failures lock the "
                    "account and the address for a while."
                ),
                body=_body(_ref("TokenRequest"), "Username and password."),
                public=True,
            )
        },
        "/v1/auth/refresh": {
            "post": _operation(
                "refresh",
                "Rotate the refresh token",
                "auth",
                {"200": _json("TokenResponse", "New tokens; the old refresh token is spent.")},
                errors=(*body_errors, "401"),
                description=(
                    "Public. A refresh token works once; using a spent one revokes its "
                    "whole family (401)."
                ),
                body=refresh_body,
                public=True,
            )
        },
        "/v1/auth/logout": {
            "post": _operation(
                "logout",
                "Log out",
                "auth",
                {"204": {"description": "The refresh token is revoked (known or not)."}},
                errors=body_errors,
                description="Public: the refresh token is the credential.",
                body=refresh_body,
                public=True,
            )
        },
        "/v1/auth/mfa/enroll": {
            "post": _operation(
                "mfaEnroll",
                "Start enrolling a second factor (TOTP)",
                "auth",
                {"200": _json("MfaEnrollment", "A new secret, in force once verified.")},
                errors=(*_SECURED, "409"),
                description=(
                    "For a logged-in user (an access token; API keys get 403). Add the secret "
                    "to an authenticator app, then send its code to /v1/auth/mfa/verify."
                ),
            )
        },
        "/v1/auth/mfa/verify": {
            "post": _operation(
                "mfaVerify",
                "Turn the second factor on",
                "auth",
                {"200": _json("MfaEnabled", "MFA is on; logins now need `totp`.")},
                errors=(*_SECURED, *_WITH_BODY),
                description=(
                    "For a logged-in user (API keys get 403). 422 when the code does not match "
                    "the enrolled secret, or there is none."
                ),
                body=_body(_ref("CodeRequest"), "The code the authenticator app shows now."),
            )
        },
    }


def _key_paths() -> Json:
    return {
        "/v1/keys": {
            "post": _operation(
                "createKey",
                "Create an API key",
                "keys",
                {
                    "201": _json(
                        "NewKey",
                        "The key, shown this once; only its hash is kept.",
                        Location=_ref("Location", "headers"),
                    )
                },
                errors=(*_SECURED, *_WITH_BODY),
                description=(
                    "Admins (`keys:manage`) manage the tenant's keys; a person without it "
                    "manages the keys they made. The new key's role may not exceed the caller's."
                ),
                body=_body(_ref("KeyRequest"), "A name, a role and an optional lifetime."),
            ),
            "get": _operation(
                "listKeys",
                "List API keys",
                "keys",
                {"200": _json("KeyList", "The tenant's keys, without the keys themselves.")},
                errors=_SECURED,
                description="Admins see every key of the tenant; a person sees their own.",
            ),
        },
        "/v1/keys/{key_id}": {
            "delete": _operation(
                "revokeKey",
                "Revoke an API key",
                "keys",
                {"204": {"description": "Revoked, at once in every API process."}},
                errors=(*_SECURED, "404"),
                description="Admins revoke any key of the tenant; a person, their own.",
                parameters=["KeyId"],
            )
        },
    }


def _audit_paths() -> Json:
    return {
        "/v1/audit": {
            "get": _operation(
                "listAudit",
                "The tenant's security events",
                "audit",
                {"200": _json("AuditPage", "Newest first; follow links.next for more.")},
                errors=(*_SECURED, "400", "422"),
                description=(
                    "Needs `audit:read`. Filter with `action` (repeat for several) and "
                    "`outcome`; 400 for a cursor this API did not make."
                ),
                parameters=["Action", "Outcome", "Limit", "Cursor"],
            )
        }
    }


def _docs_paths() -> Json:
    return {
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "This document",
                "docs",
                {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
                public=True,
            )
        },
        "/docs": {
            "get": _operation(
                "docs",
                "This document, for people",
                "docs",
                {
                    "200": {
                        "description": "A self-contained HTML page (no external assets).",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
                public=True,
            )
        },
    }


# -- the document -------------------------------------------------------------------------


def build_openapi() -> Json:
    """A fresh OpenAPI 3.1 document of every route of the app."""
    schemas, names = _component_schemas()
    submit_schema = _submit_variants(schemas, names)
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
            {"name": "streams", "description": "Task events, as SSE or over a WebSocket."},
            {"name": "auth", "description": "Tokens for users."},
            {"name": "keys", "description": "API keys for services."},
            {"name": "ops", "description": "Health, status and metrics."},
            {"name": "docs", "description": "This document."},
        ],
        "paths": {
            **_task_paths(submit_schema),
            **_stream_paths(),
            **_auth_paths(),
            **_key_paths(),
            **_audit_paths(),
            **_ops_paths(),
            **_docs_paths(),
        },
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "parameters": _PARAMETERS,
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


@functools.cache
def openapi_document() -> Json:
    """The document, built once per process; callers must not change it."""
    return build_openapi()
