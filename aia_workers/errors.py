"""The AIA error hierarchy."""

from __future__ import annotations

__all__ = [
    "AiaError",
    "ConflictError",
    "EnqueueError",
    "NotFoundError",
    "TaskFailure",
    "TransientError",
    "UnknownTaskTypeError",
]


class AiaError(Exception):
    """Raised for any error AIA itself defines; the root of the hierarchy."""


class UnknownTaskTypeError(AiaError):
    """Raised when a task type is not in the catalog."""


class NotFoundError(AiaError):
    """Raised when a resource does not exist for the caller's tenant."""


class ConflictError(AiaError):
    """Raised when a request contradicts the current state of a resource."""


class EnqueueError(AiaError):
    """Raised when a task could not be handed to the broker."""


class TransientError(AiaError):
    """Raised by domain code for a failure worth retrying with backoff."""


class TaskFailure(AiaError):
    """Raised by domain code for a failure a person must act on; never retried."""
