"""A list route's page of database rows: query parameters in, rows read off the loop, page out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from aia_api.http.params import page_limit
from aia_api.http.replies import page_reply

__all__ = ["Page", "PageFetch", "stored_page"]

T = TypeVar("T")

# Up to ``limit`` rows after the cursor, and the cursor of the next page (None at the end).
Page = tuple[Sequence[T], str | None]
# (session, limit, cursor) -> that page.
PageFetch = Callable[[Session, int, str | None], Page[T]]


async def stored_page(
    request: Request,
    sessions: sessionmaker[Session],
    fetch: PageFetch[T],
    view: Callable[[T], Any] | None = None,
) -> Response:
    """The page of ``fetch`` that the ``limit`` and ``cursor`` query parameters ask for.

    A bad ``limit`` is a 422 Problem before anything is read; a cursor this API
    did not make raises ``InvalidCursorError`` from ``fetch`` (a 400). ``view``
    turns each row into what is sent, in the same session as ``fetch`` so that
    it may still load what a row refers to; without it the rows are sent as
    ``fetch`` returns them.
    """
    limit = page_limit(request.query_params)
    cursor = request.query_params.get("cursor") or None

    def load() -> tuple[list[Any], str | None]:
        with sessions() as session:
            rows, next_cursor = fetch(session, limit, cursor)
            return [view(row) for row in rows] if view else list(rows), next_cursor

    # Sessions block: off the event loop.
    items, next_cursor = await anyio.to_thread.run_sync(load)
    return page_reply(request, items, next_cursor)
