"""Keyset pagination cursors: an opaque token for (created_at, id)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from aia_workers.errors import AiaError

__all__ = ["InvalidCursorError", "decode_cursor", "encode_cursor"]


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
