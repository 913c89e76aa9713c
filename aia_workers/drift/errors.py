"""The drift domain's errors."""

from __future__ import annotations

from aia_workers.errors import TaskFailure

__all__ = ["DriftInputError"]


class DriftInputError(TaskFailure):
    """Raised when a drift check cannot run on the data or configuration it was given."""
