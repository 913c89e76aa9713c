"""Reading a JSON request body with a size limit and a clear error for each way it fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

import anyio.to_thread
import orjson
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import Message

from aia_api.http.params import parse_count
from aia_api.http.problems import Problem, field_errors

__all__ = [
    "bounded_form",
    "media_type",
    "parse_model",
    "read_bytes",
    "read_json",
    "spool_body",
]

# Spooled writes go to disk in batches of this size, each on a worker thread.
_SPOOL_BATCH = 1 << 20

_M = TypeVar("_M", bound=BaseModel)
# Room for a form's boundaries and part headers around a file at the size limit.
_FORM_OVERHEAD = 64 * 1024


async def read_bytes(request: Request, max_bytes: int) -> bytes:
    """The whole body, or a 413 Problem as soon as it passes ``max_bytes``."""
    _refuse_declared_excess(request, max_bytes)
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > max_bytes:
            raise _too_large(max_bytes)
    return bytes(chunks)


async def spool_body(request: Request, sink: BinaryIO, max_bytes: int) -> int:
    """Copy the body into ``sink`` (a file) under ``max_bytes``; its size, or a 413 Problem.

    Only one batch is ever in memory, whatever the body's size.
    """
    _refuse_declared_excess(request, max_bytes)
    total = 0
    batch = bytearray()
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(max_bytes)
        batch += chunk
        if len(batch) >= _SPOOL_BATCH:
            await anyio.to_thread.run_sync(sink.write, bytes(batch))
            batch.clear()
    if batch:
        await anyio.to_thread.run_sync(sink.write, bytes(batch))
    return total


async def bounded_form(
    request: Request, max_bytes: int, too_large: Callable[[], Problem]
) -> FormData:
    """A multipart form of at most one file of ``max_bytes``; the caller closes it.

    Bytes are counted as they stream in, so an oversized upload is refused
    (``too_large()``) early; the parser spools the file part to disk. A body that
    is not a form it can parse is a 400.
    """
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > max_bytes + _FORM_OVERHEAD:
            raise too_large()
        return message

    try:
        return await Request(request.scope, receive).form(max_files=1, max_fields=10)
    except (HTTPException, MultiPartException) as exc:
        detail = getattr(exc, "detail", None) or getattr(exc, "message", "")
        raise Problem(400, "malformed-form", "Malformed form", str(detail)) from None


def _refuse_declared_excess(request: Request, max_bytes: int) -> None:
    declared = request.headers.get("content-length")
    size = parse_count(declared) if declared is not None else None
    if size is not None and size > max_bytes:
        raise _too_large(max_bytes)


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
