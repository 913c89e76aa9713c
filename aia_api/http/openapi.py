"""OpenAPI operations, declared beside the handlers they describe.

A handler carries its operation (``@operation(...)``): summary, the permission it
needs, parameters, request body, responses and the errors it may answer, all from
the pydantic models the handler itself uses. ``aia_api.ops.openapi`` assembles the
document from the routes the app mounts, so a route and its description cannot
drift apart, and a route without one fails tests/e2e/ops/test_openapi.py.

Schemas are named by pydantic once the document knows every model, so a
declaration holds models (``Ref``) rather than ``$ref`` strings; plain JSON may
contain ``Ref``s anywhere and they are resolved when the document is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel

from aia_api.http.params import DEFAULT_PAGE, MAX_PAGE
from aia_api.http.problems import PROBLEM_JSON

__all__ = [
    "CURSOR",
    "ERRORS",
    "HEADERS",
    "LIMIT",
    "SECURED",
    "SINCE",
    "WITH_BODY",
    "Body",
    "Json",
    "Operation",
    "Param",
    "Ref",
    "Reply",
    "SchemaSource",
    "Schemas",
    "Tag",
    "WebSocketDoc",
    "declared",
    "documented_websocket",
    "is_source",
    "operation",
    "path_param",
    "ref",
]

Json = dict[str, Any]
Mode = Literal["validation", "serialization"]
F = TypeVar("F", bound=Callable[..., Any])

_ATTRIBUTE = "__openapi__"


def ref(name: str, kind: str = "schemas") -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


class Schemas(Protocol):
    """The document's schema registry, as a declaration sees it while the document is built."""

    def ref(self, model: type[BaseModel]) -> Json: ...

    def name(self, model: type[BaseModel]) -> str: ...

    def schema(self, model: type[BaseModel]) -> Json: ...

    def add(self, name: str, schema: Json) -> Json: ...


class SchemaSource(Protocol):
    """Something that becomes JSON once every model has its component name."""

    def models(self) -> Iterable[tuple[type[BaseModel], Mode]]: ...

    def render(self, schemas: Schemas) -> Json: ...


@dataclass(frozen=True)
class Ref:
    """A model's schema by reference: ``{"$ref": "#/components/schemas/<its name>"}``."""

    model: type[BaseModel]
    mode: Mode = "serialization"

    def models(self) -> Iterable[tuple[type[BaseModel], Mode]]:
        return [(self.model, self.mode)]

    def render(self, schemas: Schemas) -> Json:
        return schemas.ref(self.model)


@dataclass(frozen=True)
class Tag:
    name: str
    description: str


@dataclass(frozen=True)
class Param:
    """A parameter kept once under components/parameters and referenced by name."""

    name: str
    spec: Json


@dataclass(frozen=True)
class Reply:
    """One response: JSON of ``model``, or ``content`` by media type (JSON that may hold Refs)."""

    description: str
    model: type[BaseModel] | None = None
    content: Mapping[str, Any] | None = None
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Body:
    """The request body: JSON of ``model``, or ``content`` by media type."""

    description: str
    model: type[BaseModel] | None = None
    content: Mapping[str, Any] | None = None
    required: bool = True


@dataclass(frozen=True)
class Operation:
    """One operation of the document. ``errors`` name shared problem responses by status."""

    id: str
    summary: str
    tag: Tag
    responses: Mapping[int, Reply]
    permission: str | None = None
    errors: tuple[str, ...] = ()
    description: str | None = None
    parameters: tuple[Param | Json, ...] = ()
    body: Body | None = None
    public: bool = False

    def sources(self) -> Iterator[SchemaSource]:
        """Every model this operation refers to, with the mode its schema is made in."""
        if self.body is not None:
            if self.body.model is not None:
                yield Ref(self.body.model, "validation")
            yield from _sources(self.body.content, "validation")
        for reply in self.responses.values():
            if reply.model is not None:
                yield Ref(reply.model)
            yield from _sources(reply.content, "serialization")


@dataclass(frozen=True)
class WebSocketDoc:
    """A WebSocket path: OpenAPI has no operation for one, so it is an ``x-websocket`` item."""

    summary: str
    description: str
    client_messages: type[BaseModel]
    server_messages: type[BaseModel]
    query: Mapping[str, str] = field(default_factory=dict)

    def sources(self) -> Iterator[SchemaSource]:
        yield Ref(self.client_messages)
        yield Ref(self.server_messages)


def operation(**fields: Any) -> Callable[[F], F]:
    """Declare the OpenAPI operation of the handler below."""
    op = Operation(**fields)

    def attach(handler: F) -> F:
        setattr(handler, _ATTRIBUTE, op)
        return handler

    return attach


def documented_websocket(doc: WebSocketDoc) -> Callable[[F], F]:
    def attach(handler: F) -> F:
        setattr(handler, _ATTRIBUTE, doc)
        return handler

    return attach


def declared(handler: Callable[..., Any]) -> Operation | WebSocketDoc | None:
    """The declaration a handler carries, if any."""
    found = getattr(handler, _ATTRIBUTE, None)
    return found if isinstance(found, Operation | WebSocketDoc) else None


def is_source(value: Any) -> bool:
    """Whether ``value`` is a SchemaSource (a Ref, or an object like the submit variants)."""
    return hasattr(value, "models") and hasattr(value, "render")


def _sources(value: Any, mode: Mode) -> Iterator[SchemaSource]:
    if isinstance(value, type) and issubclass(value, BaseModel):
        yield Ref(value, mode)
    elif is_source(value):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _sources(item, mode)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _sources(item, mode)


# -- what every domain shares -----------------------------------------------------------


def _int_header(description: str) -> Json:
    return {"description": description, "schema": {"type": "integer", "minimum": 0}}


HEADERS: Json = {
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

_RATE_HEADERS = tuple(h for h in HEADERS if h.startswith("RateLimit-"))


def _problem(description: str, *headers: str) -> Json:
    response: Json = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": ref("ProblemDetails")}},
    }
    if headers:
        response["headers"] = {h: ref(h, "headers") for h in headers}
    return response


ERRORS: dict[str, tuple[str, Json]] = {
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

SECURED = ("401", "403", "429", "503")
WITH_BODY = ("400", "413", "415", "422")

LIMIT = Param(
    "Limit",
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"Page size, 1 to {MAX_PAGE}.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
    },
)
CURSOR = Param(
    "Cursor",
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "`next_cursor` of the previous page.",
        "schema": {"type": "string"},
    },
)
SINCE = Param(
    "Since",
    {
        "name": "since",
        "in": "query",
        "required": False,
        "description": "Only those created at or after this time (ISO 8601, with a zone).",
        "schema": {"type": "string", "format": "date-time"},
    },
)


def path_param(name: str, param: str, description: str) -> Param:
    """A path segment: ``{param}``, any characters but ``/``, at most 64."""
    return Param(
        name,
        {
            "name": param,
            "in": "path",
            "required": True,
            "description": description,
            "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^/]+$"},
        },
    )
