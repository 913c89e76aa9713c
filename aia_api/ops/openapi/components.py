"""Building blocks of the OpenAPI document: schemas, parameters, headers, errors."""

from __future__ import annotations

import copy
from importlib import metadata
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from aia_api.http.problems import PROBLEM_JSON
from aia_api.http.responses import ProblemDetails
from aia_api.identity.keys import KeyRequest
from aia_api.identity.login import RefreshRequest, TokenRequest
from aia_api.identity.mfa import CodeRequest, MfaDisableRequest, MfaResetRequest, PasswordRequest
from aia_api.identity.responses import (
    AuditPage,
    KeyList,
    MfaEnabled,
    MfaEnrollment,
    NewKey,
    TokenResponse,
)
from aia_api.ml.datasets import DatasetRows
from aia_api.ml.experiments import ExperimentRequest, RunRequest
from aia_api.ml.models import AliasRequest, PredictRequest
from aia_api.ml.responses import (
    AliasMoved,
    DatasetPage,
    DatasetView,
    ExperimentPage,
    ExperimentView,
    ModelDetail,
    ModelPage,
    PredictionPage,
    RunAccepted,
    RunPage,
    RunView,
    VersionView,
)
from aia_api.ops.responses import Health, StatusReport
from aia_api.tasks.requests import SubmitRequest
from aia_api.tasks.responses import (
    DeadLetterPage,
    DeadLetterView,
    TaskEvent,
    TaskPage,
    TaskView,
    WsCommand,
    WsMessage,
)
from aia_api.tasks.streaming.tickets import StreamTicket
from aia_api.webhooks.responses import (
    AttemptPage,
    EndpointPage,
    EndpointView,
    EventTypeList,
    MessagePage,
    MessageView,
    NewEndpoint,
    Recovered,
)
from aia_api.webhooks.routes import EndpointPatch, EndpointRequest, RecoverRequest
from aia_workers.backbone.catalog import CATALOG
from aia_workers.backbone.states import Status

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
    PasswordRequest,
    MfaDisableRequest,
    MfaResetRequest,
    KeyRequest,
    DatasetRows,
    ExperimentRequest,
    RunRequest,
    AliasRequest,
    PredictRequest,
    EndpointRequest,
    EndpointPatch,
    RecoverRequest,
)
_RESPONSES: tuple[type[BaseModel], ...] = (
    TaskView,
    TaskPage,
    TaskEvent,
    DeadLetterView,
    DeadLetterPage,
    TokenResponse,
    MfaEnrollment,
    MfaEnabled,
    NewKey,
    KeyList,
    DatasetView,
    DatasetPage,
    ExperimentView,
    ExperimentPage,
    RunView,
    RunAccepted,
    RunPage,
    ModelPage,
    ModelDetail,
    VersionView,
    AliasMoved,
    PredictionPage,
    EndpointView,
    NewEndpoint,
    EndpointPage,
    MessageView,
    MessagePage,
    AttemptPage,
    Recovered,
    EventTypeList,
    AuditPage,
    Health,
    StatusReport,
    ProblemDetails,
    WsCommand,
    WsMessage,
    StreamTicket,
)


def _legacy_models() -> tuple[list[tuple[type[BaseModel], JsonSchemaMode]], None]:
    """The models of the paths not yet declared beside their handlers."""
    return [
        *((m, "validation") for m in _REQUESTS),
        *((m, "serialization") for m in _RESPONSES),
    ], None


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
    "DatasetId": _path_param("dataset_id", "The dataset's id."),
    "ExperimentId": _path_param("experiment_id", "The experiment's id."),
    "RunId": _path_param("run_id", "The run's id."),
    "ModelName": _path_param("name", "The model's name (its experiment's name)."),
    "Version": {
        "name": "version",
        "in": "path",
        "required": True,
        "description": "A version number: 1, 2, ...",
        "schema": {"type": "integer", "minimum": 1},
    },
    "Alias": _path_param("alias", "An alias: `production`, `staging`, or any name."),
    "EndpointId": _path_param("endpoint_id", "The webhook endpoint's id."),
    "MessageIdPath": _path_param("message_id", "The message's id (its `webhook-id`)."),
    "MessageId": {
        "name": "message_id",
        "in": "query",
        "required": False,
        "description": "Only this message's attempts.",
        "schema": {"type": "string", "maxLength": 64},
    },
    "MessageStatus": {
        "name": "status",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["pending", "sending", "delivered", "failed"]},
    },
    "EventType": {
        "name": "event_type",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 64},
    },
    "AttemptOutcome": {
        "name": "outcome",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["succeeded", "failed"]},
    },
    "Since": {
        "name": "since",
        "in": "query",
        "required": False,
        "description": "Only those created at or after this time (ISO 8601, with a zone).",
        "schema": {"type": "string", "format": "date-time"},
    },
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
            "too many failed authentications from the client address "
            "(too-many-failures), or, on submit, too many of the tenant's tasks in flight.",
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
