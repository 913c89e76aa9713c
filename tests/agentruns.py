"""A run context for agent tests: records progress and messages, and can be cancelled at a
chosen step."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from aia_workers.agents.contracts import AgentEnvironment, Message, RunCancelled
from aia_workers.ml.artifacts import LocalArtifactStore
from aia_workers.settings import Settings


@dataclass
class RecordingContext:
    """``AgentContext`` for tests; ``cancel_at`` cancels when that many progress reports are in.

    ``messages`` is the mailbox ``inbox()`` hands out (less what was acked);
    ``sent`` records what the run sent, and to whom.
    """

    env: AgentEnvironment
    tenant: str = "t1"
    agent_id: str = "agent-1"
    run_id: str = "run-1"
    cancel_at: int | None = None
    progress_reports: list[tuple[int, int, str | None]] = field(default_factory=list)
    checkpoints: int = 0
    cancelled: bool = False
    messages: list[Message] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def progress(self, current: int, total: int, message: str | None = None) -> None:
        self.progress_reports.append((current, total, message))
        if self.cancel_at is not None and len(self.progress_reports) >= self.cancel_at:
            self.cancelled = True

    def checkpoint(self) -> None:
        self.checkpoints += 1
        if self.cancelled:
            raise RunCancelled(f"run {self.run_id} was cancelled")

    def inbox(self, limit: int = 100) -> list[Message]:
        return [m for m in self.messages if m.id not in self.acked][:limit]

    def ack(self, message_ids: Iterable[str]) -> list[str]:
        fresh = [i for i in dict.fromkeys(message_ids) if i not in self.acked]
        self.acked.extend(fresh)
        return fresh

    def send(self, agent: str, body: Mapping[str, Any]) -> str:
        self.sent.append((agent, dict(body)))
        return f"message-{len(self.sent)}"


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
