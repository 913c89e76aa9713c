"""The mailbox's pure parts: what a message body may be, cursors, names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aia_workers.agents.mailbox import (
    MessageTooLargeError,
    _decode_cursor,
    _encode_cursor,
    _json_body,
    agent_sender,
    mailbox_channel,
)
from aia_workers.db.cursors import InvalidCursorError
from aia_workers.errors import TaskFailure


def test_a_body_is_a_json_object_within_the_limit() -> None:
    when = datetime(2026, 1, 2, tzinfo=UTC)
    # What a run hands over is stored as plain JSON, as every reader will see it.
    assert _json_body({"at": when, "n": (1, 2)}, 100) == {
        "at": "2026-01-02T00:00:00+00:00",
        "n": [1, 2],
    }
    with pytest.raises(MessageTooLargeError, match="AIA_AGENT_MESSAGE_MAX_BYTES") as caught:
        _json_body({"text": "x" * 100}, 64)
    assert (caught.value.size, caught.value.limit) == (111, 64)
    with pytest.raises(TaskFailure, match="must be JSON"):
        _json_body({"x": object()}, 100)
    with pytest.raises(TaskFailure, match="a JSON object, not list"):
        _json_body([1, 2], 100)  # type: ignore[arg-type]


def test_a_cursor_is_a_position_and_others_are_refused() -> None:
    assert _decode_cursor(_encode_cursor(41)) == 41
    for bad in ("", "not-base64!", _encode_cursor(-1), "WyJ4IiwgMV0"):
        with pytest.raises(InvalidCursorError):
            _decode_cursor(bad)


def test_names() -> None:
    assert agent_sender("a1") == "agent:a1"
    assert mailbox_channel("t1", "a1") == "aia:agent:t1:a1:mailbox"
