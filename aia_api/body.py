"""Reading a JSON request body with a size limit and a clear error for each way it fails."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from aia_api.params import parse_count
from aia_api.problems import Problem, field_errors

__all__ = ["media_type", "parse_model", "read_bytes", "read_json"]

_M = TypeVar("_M", bound=BaseModel)


async def read_bytes(request: Request, max_bytes: int) -> bytes:
    """The whole body, or a 413 Problem as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length")
    size = parse_count(declared) if declared is not None else None
    if size is not None and size > max_bytes:
        raise _too_large(max_bytes)
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > max_bytes:
            raise _too_large(max_bytes)
    return bytes(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_json(request: Request, max_bytes: int) -> Any:
    """The parsed JSON body, or a Problem: 415 wrong type, 413 too big, 400 malformed."""
    kind = media_type(request)
    if kind != "application/json" and not kind.endswith("+json"):
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"send the body as application/json (got {kind or 'no content type'})",
        )
    chunks = await read_bytes(request, max_bytes)
    if not chunks:
        raise Problem(400, "malformed-json", "Malformed JSON", "the request body is empty")
    try:
        return orjson.loads(chunks)
    except orjson.JSONDecodeError as exc:
        raise Problem(
            400,
            "malformed-json",
            "Malformed JSON",
            f"the request body is not valid JSON: {exc}",
        ) from None


def _too_large(max_bytes: int) -> Problem:
    return Problem(
        413,
        "payload-too-large",
        "Payload too large",
        f"the request body is larger than the limit of {max_bytes} bytes",
        max_bytes=max_bytes,
    )


def parse_model(model: type[_M], body: Any) -> _M:
    """``body`` as ``model``, or a 422 Problem with an error per field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise Problem(
            422,
            "validation-error",
            "Invalid request",
            "the request does not match the schema; see errors for each field",
            errors=field_errors(exc),
        ) from None
