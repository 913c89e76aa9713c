"""Paths and components assembled from the declarations the mounted handlers carry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from aia_api.http.openapi import (
    ERRORS,
    Json,
    Operation,
    Param,
    Reply,
    SchemaSource,
    Tag,
    WebSocketDoc,
    declared,
    is_source,
    ref,
)

__all__ = ["Assembly", "Registry", "Undocumented", "assemble"]

_REF = "#/components/schemas/{model}"


class Undocumented(LookupError):
    """A mounted route whose handler carries no OpenAPI declaration."""


@dataclass
class Registry:
    """Component schemas by model, named by pydantic once every model is known."""

    defs: Json
    names: dict[type[BaseModel], str]

    @classmethod
    def of(cls, models: Iterable[tuple[type[BaseModel], JsonSchemaMode]]) -> Registry:
        refs, top = models_json_schema(list(dict.fromkeys(models)), ref_template=_REF)
        names: dict[type[BaseModel], str] = {}
        for (model, _), found in refs.items():
            if isinstance(model, type) and issubclass(model, BaseModel):
                names[model] = str(found["$ref"]).rsplit("/", 1)[-1]
        return cls(dict(top.get("$defs", {})), names)

    def name(self, model: type[BaseModel]) -> str:
        return self.names[model]

    def ref(self, model: type[BaseModel]) -> Json:
        return ref(self.names[model])

    def schema(self, model: type[BaseModel]) -> Json:
        schema: Json = self.defs[self.names[model]]
        return schema

    def add(self, name: str, schema: Json) -> Json:
        self.defs[name] = schema
        return ref(name)


@dataclass
class Assembly:
    """What the mounted routes declare: operations by path and method, in mount order."""

    operations: dict[str, dict[str, Operation]] = field(default_factory=dict)
    websockets: dict[str, WebSocketDoc] = field(default_factory=dict)

    def sources(self) -> Iterable[SchemaSource]:
        for methods in self.operations.values():
            for op in methods.values():
                yield from op.sources()
        for doc in self.websockets.values():
            yield from doc.sources()

    def tags(self) -> list[Tag]:
        seen: dict[str, Tag] = {}
        for methods in self.operations.values():
            for op in methods.values():
                seen.setdefault(op.tag.name, op.tag)
        return list(seen.values())

    def parameters(self) -> Json:
        found: Json = {}
        for methods in self.operations.values():
            for op in methods.values():
                for param in op.parameters:
                    if not isinstance(param, Param):
                        continue
                    if found.setdefault(param.name, param.spec) != param.spec:
                        raise ValueError(f"two parameters are named {param.name}")
        return found

    def paths(self, registry: Registry) -> Json:
        paths: Json = {}
        for path, methods in self.operations.items():
            paths[path] = {m: _operation(op, registry) for m, op in methods.items()}
        for path, doc in self.websockets.items():
            paths[path] = {
                "summary": doc.summary,
                "description": doc.description,
                "x-websocket": {
                    "url": path,
                    "client-messages": registry.ref(doc.client_messages),
                    "server-messages": registry.ref(doc.server_messages),
                    "query": dict(doc.query),
                },
            }
        return paths


def assemble(routes: Sequence[BaseRoute]) -> Assembly:
    """The declarations of ``routes``; Undocumented names the first route without one."""
    found = Assembly()
    for route in _flatten(routes):
        decl = declared(route.endpoint)
        if isinstance(route, WebSocketRoute) and isinstance(decl, WebSocketDoc):
            found.websockets[route.path] = decl
        elif isinstance(route, Route) and isinstance(decl, Operation):
            item = found.operations.setdefault(route.path, {})
            for method in sorted((route.methods or set()) - {"HEAD"}):
                item[method.lower()] = decl
        else:
            raise Undocumented(f"{route.path} ({route.endpoint.__qualname__}) is not documented")
    return found


def _flatten(routes: Sequence[BaseRoute]) -> Iterable[Route | WebSocketRoute]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _flatten(route.routes)
        elif isinstance(route, Route | WebSocketRoute):
            yield route


def _operation(op: Operation, registry: Registry) -> Json:
    out: Json = {"operationId": op.id, "summary": op.summary, "tags": [op.tag.name]}
    if op.description:
        out["description"] = op.description
    if op.parameters:
        out["parameters"] = [
            ref(p.name, "parameters") if isinstance(p, Param) else resolve(p, registry)
            for p in op.parameters
        ]
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body.required,
            "description": op.body.description,
            "content": _content(op.body.model, op.body.content, registry),
        }
    responses: Json = {str(code): _reply(reply, registry) for code, reply in op.responses.items()}
    for code in sorted(set(op.errors)):
        responses[code] = ref(ERRORS[code][0], "responses")
    out["responses"] = responses
    if op.public:
        out["security"] = []
    return out


def _reply(reply: Reply, registry: Registry) -> Json:
    out: Json = {"description": reply.description}
    if reply.model is not None or reply.content is not None:
        out["content"] = _content(reply.model, reply.content, registry)
    if reply.headers:
        out["headers"] = {h: ref(h, "headers") for h in reply.headers}
    return out


def _content(model: type[BaseModel] | None, content: Any, registry: Registry) -> Json:
    if model is not None:
        return {"application/json": {"schema": registry.ref(model)}}
    resolved: Json = resolve(dict(content or {}), registry)
    return resolved


def resolve(value: Any, registry: Registry) -> Any:
    """JSON with every model and schema source in it replaced by its schema."""
    if isinstance(value, type) and issubclass(value, BaseModel):
        return registry.ref(value)
    if is_source(value):
        return value.render(registry)
    if isinstance(value, dict):
        return {k: resolve(v, registry) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v, registry) for v in value]
    return value
