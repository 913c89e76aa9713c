"""How ``aia submit --watch`` shows a task's events."""

from __future__ import annotations

import json

import pytest

from aia_api.cli.submit import _show


def _event(name: str, data: dict[str, object]) -> dict[str, object]:
    return {"task_id": "t", "seq": 2, "event": name, "status": "running", "data": data}


def test_progress_is_a_bar(capsys: pytest.CaptureFixture[str]) -> None:
    assert _show(_event("progress", {"current": 1, "total": 4, "message": "step 1"})) is None
    err = capsys.readouterr().err
    assert "1/4 step 1" in err
    assert "[#######-----------------------]" in err  # a quarter of the bar


def test_a_note_before_the_start_is_a_line_not_a_bar(capsys: pytest.CaptureFixture[str]) -> None:
    waiting = {"message": "waiting for a slot of agent a1: 2 runs ahead", "waiting": {"ahead": 2}}
    assert _show(_event("progress", waiting)) is None
    err = capsys.readouterr().err
    assert err == "waiting for a slot of agent a1: 2 runs ahead\n"


def test_the_result_goes_to_stdout_and_ends_the_watch(capsys: pytest.CaptureFixture[str]) -> None:
    assert _show(_event("succeeded", {"result": {"ok": True}})) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True}
    assert _show(_event("failed", {"error": {"message": "boom"}})) == 1
    assert "failed: boom" in capsys.readouterr().err
