"""Task states and the events that move a task between them."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TERMINAL", "Event", "Queue", "Status"]


class Queue(StrEnum):
    AGENTS = "agents"
    ML = "ml"
    DRIFT = "drift"
    WEBHOOKS = "webhooks"
    DEFAULT = "default"


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Event(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def status(self) -> Status | None:
        """The status this event moves a task to (progress leaves it running)."""
        return _EVENT_STATUS.get(self)


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

_EVENT_STATUS = {
    Event.QUEUED: Status.QUEUED,
    Event.STARTED: Status.RUNNING,
    Event.RETRYING: Status.RETRYING,
    Event.SUCCEEDED: Status.SUCCEEDED,
    Event.FAILED: Status.FAILED,
    Event.CANCELLED: Status.CANCELLED,
}
