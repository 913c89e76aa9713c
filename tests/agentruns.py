"""A run context for agent tests: records progress, and can be cancelled at a chosen step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aia_workers.agents.contracts import AgentEnvironment, RunCancelled


@dataclass
class RecordingContext:
    """``AgentContext`` for tests; ``cancel_at`` cancels when that many progress reports are in."""

    env: AgentEnvironment
    tenant: str = "t1"
    agent_id: str = "agent-1"
    run_id: str = "run-1"
    cancel_at: int | None = None
    progress_reports: list[tuple[int, int, str | None]] = field(default_factory=list)
    checkpoints: int = 0
    cancelled: bool = False

    def progress(self, current: int, total: int, message: str | None = None) -> None:
        self.progress_reports.append((current, total, message))
        if self.cancel_at is not None and len(self.progress_reports) >= self.cancel_at:
            self.cancelled = True

    def checkpoint(self) -> None:
        self.checkpoints += 1
        if self.cancelled:
            raise RunCancelled(f"run {self.run_id} was cancelled")


def no_events(*_args: Any, **_kwargs: Any) -> None:
    """An events sink that records nothing (the analysis and content agents send none)."""
