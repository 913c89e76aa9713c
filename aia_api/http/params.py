"""Whole numbers from query strings and headers, checked before anything uses them."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request

from aia_api.http.problems import Problem

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "page_limit", "page_links", "parse_count"]

# ASCII digits only (str.isdigit() also takes "²"), and few enough for any use here.
_COUNT = re.compile(r"[0-9]{1,15}")

# Every list of the API pages alike; the OpenAPI `Limit` parameter says so.
MAX_PAGE = 200
DEFAULT_PAGE = 50


def parse_count(raw: str) -> int | None:
    """``raw`` as a non-negative integer, or None when it is not one we accept."""
    return int(raw) if _COUNT.fullmatch(raw) else None


def page_limit(params: QueryParams, maximum: int = MAX_PAGE, default: int = DEFAULT_PAGE) -> int:
    """The ``limit`` query parameter (1..maximum), or a 422 Problem."""
    raw = params.get("limit", str(default))
    value = parse_count(raw)
    if value is None or not 1 <= value <= maximum:
        raise Problem(
            422,
            "validation-error",
            "Invalid request",
            f"limit must be a whole number from 1 to {maximum}",
            errors=[
                {
                    "loc": ["query", "limit"],
                    "pointer": "/query/limit",
                    "message": f"must be 1-{maximum}",
                    "type": "range",
                }
            ],
        )
    return value


def page_links(request: Request, next_cursor: str | None) -> dict[str, str]:
    """``self``, and ``next`` (the same query with the next cursor) when there is more."""
    links = {"self": request.url.path}
    if next_cursor:
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        links["next"] = f"{request.url.path}?{urlencode([*kept, ('cursor', next_cursor)])}"
    return links
