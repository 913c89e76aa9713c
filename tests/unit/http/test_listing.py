"""stored_page: a list route's page, over an in-memory SQLite table, without a server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.listing import Page, PageFetch, stored_page
from aia_api.http.problems import exception_handlers
from aia_workers.db.base import UTCDateTime
from aia_workers.db.cursors import keyset_page

_START = datetime(2024, 1, 1, tzinfo=UTC)


class _Base(DeclarativeBase):
    pass


class _Row(_Base):
    __tablename__ = "rows"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Deferred: read only on access, which needs the row's session still open.
    note: Mapped[str] = mapped_column(String, deferred=True)


@pytest.fixture
def sessions() -> Iterator[sessionmaker[Session]]:
    # One shared connection: the page is read in a worker thread.
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    _Base.metadata.create_all(engine)
    made = sessionmaker(engine)
    with made.begin() as session:
        session.add_all(
            _Row(id=f"r{i}", created_at=_START + timedelta(minutes=i), note=f"note {i}")
            for i in range(5)
        )
    yield made
    engine.dispose()


def _fetch(session: Session, limit: int, cursor: str | None) -> Page[_Row]:
    return keyset_page(session, select(_Row), _Row.created_at, _Row.id, limit=limit, cursor=cursor)


def _get(
    sessions: sessionmaker[Session],
    url: str,
    view: Callable[[_Row], Any] | None,
    fetch: PageFetch[Any] = _fetch,
) -> httpx.Response:
    async def listing(request: Request) -> Response:
        return await stored_page(request, sessions, fetch, view)

    app = Starlette(routes=[Route("/rows", listing)], exception_handlers=exception_handlers(1))

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get(url)

    return asyncio.run(call())


def _note(row: _Row) -> dict[str, str]:
    return {"id": row.id, "note": row.note}


def test_following_next_reads_every_row_once_in_the_session_of_its_page(
    sessions: sessionmaker[Session],
) -> None:
    seen: list[dict[str, str]] = []
    url: str | None = "/rows?limit=2&q=kept"
    while url is not None:
        response = _get(sessions, url, _note)
        assert response.status_code == 200
        body = response.json()
        seen.extend(body["items"])
        assert body["links"]["self"] == "/rows"
        url = body["links"].get("next")
        assert (url is None) == (body["next_cursor"] is None)
        if url is not None:
            assert url.startswith("/rows?limit=2&q=kept&cursor=")
    assert seen == [{"id": f"r{i}", "note": f"note {i}"} for i in reversed(range(5))]


def test_without_a_view_the_rows_go_out_as_fetched(sessions: sessionmaker[Session]) -> None:
    def fetch(session: Session, limit: int, cursor: str | None) -> Page[str]:
        rows, next_cursor = _fetch(session, limit, cursor)
        return [row.id for row in rows], next_cursor

    body = _get(sessions, "/rows", None, fetch).json()
    assert body["items"] == ["r4", "r3", "r2", "r1", "r0"]
    assert body["next_cursor"] is None
    assert body["links"] == {"self": "/rows"}


@pytest.mark.parametrize("limit", ["0", "201", "two", "²"])
def test_a_bad_limit_is_a_422_problem(sessions: sessionmaker[Session], limit: str) -> None:
    response = _get(sessions, f"/rows?limit={limit}", _note)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["query", "limit"]


def test_a_cursor_this_api_did_not_make_is_a_400_problem(
    sessions: sessionmaker[Session],
) -> None:
    response = _get(sessions, "/rows?cursor=not-ours", _note)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("invalid-cursor")
