"""JSON replies as the routes send them: orjson-encoded, and pages of a list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from aia_api.http.params import page_links

__all__ = ["json_reply", "page_reply"]


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def page_reply(request: Request, items: Sequence[Any], next_cursor: str | None) -> Response:
    """One page of a list: its items, the cursor for the next, and links to both."""
    return json_reply(
        {
            "items": list(items),
            "next_cursor": next_cursor,
            "links": page_links(request, next_cursor),
        }
    )
