"""Folding recorder stream entries into rows, without a database."""

from __future__ import annotations

import json

from aia_workers.backbone.history_writer import merge_events


def _e(task: str, seq: int, event: str, status: str, t: float, **data: object) -> dict[str, str]:
    return {
        "task": task,
        "tenant": "t",
        "type": "x",
        "queue": "default",
        "e": json.dumps(
            {"task_id": task, "seq": seq, "event": event, "status": status, "time": t, "data": data}
        ),
    }


def test_merge_keeps_the_newest_state_per_task() -> None:
    rows = merge_events(
        [
            _e("a", 1, "queued", "queued", 10.0),
            _e("b", 1, "queued", "queued", 11.0),
            _e("a", 2, "started", "running", 12.0, attempt=1),
            _e("a", 3, "failed", "failed", 13.0, error={"message": "boom"}),
        ]
    )
    by_id = {r["id"]: r for r in rows}
    assert by_id["a"]["status"] == "failed"
    assert by_id["a"]["seq"] == 3
    assert by_id["a"]["error"] == {"message": "boom"}
    assert by_id["a"]["attempts"] == 1
    assert by_id["a"]["finished_at"].timestamp() == 13.0
    assert by_id["b"]["status"] == "queued"


def test_a_task_first_seen_mid_life_still_gets_a_creation_time() -> None:
    rows = merge_events([_e("a", 5, "progress", "running", 20.0, current=1, total=2)])
    assert rows[0]["created_at"].timestamp() == 20.0
    assert rows[0]["progress"] == {"current": 1, "total": 2}


def test_a_run_waiting_for_its_agents_slot_stays_queued_with_no_progress() -> None:
    waiting = {"agent_id": "a1", "ahead": 2}
    rows = merge_events(
        [
            _e("a", 1, "queued", "queued", 10.0),
            _e("a", 2, "progress", "queued", 11.0, message="waiting", waiting=waiting),
        ]
    )
    assert (rows[0]["status"], rows[0]["seq"], rows[0]["progress"]) == ("queued", 2, None)
    assert rows[0]["created_at"].timestamp() == 10.0
