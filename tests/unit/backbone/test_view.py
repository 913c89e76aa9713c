"""The task view has one shape, whether from the live record or the recorded row."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from aia_workers.backbone.view import view_from_hash, view_from_record


def test_live_and_recorded_views_agree_on_shape_priority_and_eta() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    eta = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    live = view_from_hash(
        {
            "id": "t",
            "type": "diagnostics.sleep",
            "queue": "default",
            "status": "queued",
            "seq": "1",
            "attempts": "0",
            "payload": '{"seconds":1}',
            "priority": "7",
            "eta": eta.isoformat(),
            "created_at": repr(created.timestamp()),
            "updated_at": repr(created.timestamp()),
        }
    )
    row = SimpleNamespace(
        id="t",
        type="diagnostics.sleep",
        queue="default",
        status="queued",
        seq=1,
        attempts=0,
        progress=None,
        payload={"seconds": 1},
        result=None,
        error=None,
        priority=7,
        eta=eta,
        created_at=created,
        started_at=None,
        finished_at=None,
        updated_at=created,
    )
    assert view_from_record(row) == live  # type: ignore[arg-type]
    assert (live["priority"], live["eta"]) == (7, eta.isoformat())
