"""RFC 9457 problem details, and the handlers that turn errors into them."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis.exceptions
import sqlalchemy.exc
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from aia_workers.db.cursors import InvalidCursorError
from aia_workers.errors import ConflictError, NotFoundError
from aia_workers.ml.contracts.tables import DatasetError
from aia_workers.secretbox import SecretBoxError

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "dataset_problem",
    "exception_handlers",
    "field_errors",
    "problem_response",
    "unavailable",
]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_BASE = "urn:aia:problem:"


class Problem(Exception):
    """An error the API reports to its caller as problem+json."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = _BASE + slug
        self.title = title
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    return Response(
        json.dumps(problem.body(instance)),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def field_errors(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[dict[str, Any]]:
    """Pydantic's errors as ``{loc, pointer, message, type}`` entries."""
    out = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [*prefix, *err["loc"]]
        out.append(
            {
                "loc": loc,
                "pointer": "/" + "/".join(str(p) for p in loc),
                "message": err["msg"],
                "type": err["type"],
            }
        )
    return out


_HTTP_SLUGS = {
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
}


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request.url.path)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    detail = (
        exc.detail
        if exc.status_code not in _HTTP_SLUGS
        else (
            f"no resource at {request.url.path}"
            if exc.status_code == 404
            else f"{request.method} is not allowed on {request.url.path}"
        )
    )
    return problem_response(
        Problem(exc.status_code, slug, title, detail, headers=exc.headers), request.url.path
    )


async def _on_bad_cursor(request: Request, exc: Exception) -> Response:
    problem = Problem(400, "invalid-cursor", "Invalid cursor", str(exc))
    return problem_response(problem, request.url.path)


async def _on_not_found(request: Request, exc: Exception) -> Response:
    return problem_response(Problem(404, "not-found", "Not found", str(exc)), request.url.path)


async def _on_conflict(request: Request, exc: Exception) -> Response:
    return problem_response(Problem(409, "conflict", "Conflict", str(exc)), request.url.path)


async def _on_dataset(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DatasetError)
    return problem_response(dataset_problem(exc), request.url.path)


def dataset_problem(exc: DatasetError) -> Problem:
    """A 422 naming the column and row of data that cannot be used."""
    loc: list[str | int] = ["body"]
    if exc.row is not None:
        loc += ["row", exc.row]
    if exc.column is not None:
        loc.append(exc.column)
    error = {
        "loc": loc,
        "pointer": "/" + "/".join(str(part) for part in loc),
        "message": str(exc),
        "type": "dataset",
    }
    return Problem(
        422,
        "dataset-invalid",
        "Data not usable",
        str(exc),
        errors=[error],
        column=exc.column,
        row=exc.row,
    )


def unavailable(what: str, retry_after: int) -> Problem:
    return Problem(
        503,
        "service-unavailable",
        "Service unavailable",
        f"{what} is not reachable right now; nothing was changed. Try again shortly.",
        headers={"Retry-After": str(retry_after)},
    )


def exception_handlers(retry_after: int) -> dict[Any, Any]:
    """Starlette exception handlers; backing services that are down give a 503."""

    async def on_redis(request: Request, exc: Exception) -> Response:
        log.warning("redis unavailable: %s", exc)
        return problem_response(unavailable("Redis", retry_after), request.url.path)

    async def on_database(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s", exc)
        return problem_response(unavailable("The database", retry_after), request.url.path)

    async def on_sealed(request: Request, exc: Exception) -> Response:
        # A missing or rotated-away encryption key is the operator's to fix;
        # the caller's request was fine and changed nothing.
        log.error("a stored secret cannot be used: %s", exc)
        problem = Problem(
            503,
            "secrets-unavailable",
            "Secrets unavailable",
            "the server cannot read or write its encrypted secrets (AIA_ENCRYPTION_KEYS); "
            "nothing was changed",
            headers={"Retry-After": str(retry_after)},
        )
        return problem_response(problem, request.url.path)

    return {
        Problem: _on_problem,
        HTTPException: _on_http,
        redis.exceptions.ConnectionError: on_redis,
        redis.exceptions.TimeoutError: on_redis,
        sqlalchemy.exc.OperationalError: on_database,
        sqlalchemy.exc.InterfaceError: on_database,
        # Every pooled connection is waiting on a database that does not answer.
        sqlalchemy.exc.TimeoutError: on_database,
        TimeoutError: on_redis,
        InvalidCursorError: _on_bad_cursor,
        NotFoundError: _on_not_found,
        ConflictError: _on_conflict,
        DatasetError: _on_dataset,
        SecretBoxError: on_sealed,
    }
