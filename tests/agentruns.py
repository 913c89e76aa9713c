"""A run context for agent tests: records progress, and can be cancelled at a chosen step."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from aia_workers.agents.contracts import AgentEnvironment, RunCancelled
from aia_workers.ml.artifacts import LocalArtifactStore
from aia_workers.settings import Settings


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


def offline_environment(root: Path, llm: Any = None) -> AgentEnvironment:
    """An environment for agents that need no services: files under ``root``, no database
    rows, a Redis client that never connects unless used, and ``llm`` (None: offline)."""
    return AgentEnvironment(
        settings=Settings(),
        sessions=sessionmaker(create_engine("sqlite://")),
        artifacts=LocalArtifactStore(root),
        redis=redis.Redis(port=1),
        events=no_events,
        llm=llm,
    )
