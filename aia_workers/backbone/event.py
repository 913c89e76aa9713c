"""The task event: the JSON every event of a task carries, and its one parser.

The scripts (``aia_workers.backbone.scripts``) write each event once, as
``{"task_id", "seq", "event", "status", "time", "data"}``, to the task's
replay stream, its pub/sub channel and the recorder stream; the API's hub,
its SSE and WebSocket streams and the recorder read it back through
``TaskEvent.from_json``, and clients get it through ``TaskEvent.as_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from aia_workers.backbone.states import TERMINAL

__all__ = ["TaskEvent"]


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One event of one task.

    ``event`` is its name (an ``Event`` value) and ``status`` the status it
    left the task in (a ``Status`` value); ``seq`` numbers the task's events
    from 1. ``time`` is unix seconds, None for an event made up from a
    finished record whose replay stream expired. ``data`` holds what the
    event says: the payload's type and queue when queued, the attempt when
    started, the progress, the result, the error or the reason.
    """

    task_id: str
    seq: int
    event: str
    status: str
    time: float | None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: str | bytes) -> TaskEvent:
        """Parse an event as the scripts write it; ValueError or KeyError when it is not one."""
        e = orjson.loads(raw)
        return cls(
            e["task_id"], int(e["seq"]), e["event"], e["status"], e["time"], e.get("data") or {}
        )

    @property
    def ends(self) -> bool:
        """True when the task is finished: nothing follows this event."""
        return self.status in TERMINAL

    def as_dict(self) -> dict[str, Any]:
        """The event's JSON object, keys in the order the scripts write them."""
        return {
            "task_id": self.task_id,
            "seq": self.seq,
            "event": self.event,
            "status": self.status,
            "time": self.time,
            "data": self.data,
        }

    def to_json(self) -> str:
        """The event as compact JSON, as the scripts write it."""
        return orjson.dumps(self.as_dict()).decode()
