"""How a task body reports progress without knowing about Celery or Redis."""

from __future__ import annotations

from typing import Protocol

__all__ = ["ProgressReporter", "discard_progress"]


class ProgressReporter(Protocol):
    """Called by domain code as work advances: ``current`` of ``total`` units."""

    def __call__(self, current: int, total: int, message: str | None = None) -> None: ...


def discard_progress(current: int, total: int, message: str | None = None) -> None:
    """A reporter for callers that do not watch progress (tests, scripts)."""
