"""Keyset pagination cursors: an opaque token for (created_at, id)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from aia_workers.errors import AiaError

__all__ = ["InvalidCursorError", "decode_cursor", "encode_cursor", "keyset_page"]

_Row = TypeVar("_Row")


class InvalidCursorError(AiaError):
    """Raised when a pagination cursor was not made by this API or was altered."""


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_text, row_id = json.loads(raw)
        created = datetime.fromisoformat(created_text)
        if created.tzinfo is None or not isinstance(row_id, str):
            raise ValueError("incomplete cursor")
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidCursorError(
            "the cursor is not one this API returned; start again without it"
        ) from exc
    return created, row_id


def keyset_page(
    session: Session,
    stmt: Select[_Row],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[str],
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[_Row], str | None]:
    """One page of ``stmt``, newest first by (created_at, id), and the cursor of the next."""
    if cursor:
        created, last_id = decode_cursor(cursor)
        stmt = stmt.where(or_(created_at < created, and_(created_at == created, row_id < last_id)))
    stmt = stmt.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(getattr(last, created_at.key), getattr(last, row_id.key))
