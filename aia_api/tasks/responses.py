"""Response models of the task and stream routes, for the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aia_api.http.responses import Closed, PageLinks
from aia_workers.backbone.states import Event, Queue, Status

__all__ = [
    "DeadLetterLinks",
    "DeadLetterPage",
    "DeadLetterView",
    "TaskEvent",
    "TaskLinks",
    "TaskPage",
    "TaskView",
    "WsCommand",
    "WsMessage",
]


class TaskLinks(Closed):
    self_: str = Field(alias="self", description="This task: `/v1/tasks/{id}`.")
    events: str = Field(description="Its event stream: `/v1/tasks/{id}/events` (SSE).")


class TaskView(Closed):
    """A task as its tenant sees it: the live record, or the recorded history once expired."""

    id: str
    type: str = Field(description="The task type, a key of the catalog.")
    queue: Queue
    status: Status
    seq: int = Field(ge=0, description="Number of the task's latest event.")
    attempts: int = Field(ge=0)
    progress: Any = Field(default=None, description="The latest progress report, if any.")
    payload: Any = Field(default=None, description="The payload, normalised by its schema.")
    result: Any = Field(default=None, description="What the task returned, once succeeded.")
    error: Any = Field(default=None, description="Why it failed: `{type, message, ...}`.")
    priority: int | None = Field(default=None, ge=0, le=9)
    eta: datetime | None = Field(default=None, description="Not before this time (countdown).")
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None
    links: TaskLinks


class TaskPage(Closed):
    """One page of the tenant's recorded tasks, newest first."""

    items: list[TaskView]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")
    links: PageLinks


class DeadLetterLinks(Closed):
    self_: str = Field(alias="self", description="This dead letter: `/v1/dead-letters/{id}`.")
    task: str = Field(description="The quarantined task: `/v1/tasks/{id}`.")
    replay: str = Field(description="POST here to run it again as a new task.")


class DeadLetterView(Closed):
    """A task quarantined because its worker process was lost too many times."""

    id: str = Field(description="The quarantined task's id.")
    type: str = Field(description="The task type, a key of the catalog.")
    queue: str = Field(description="The queue it was delivered on.")
    payload: Any = Field(description="The task's payload, as a replay submits it again.")
    reason: str = Field(description="Why it was quarantined, and what to do about it.")
    losses: int = Field(ge=1, description="Times its worker was lost while running it.")
    attempts: int = Field(ge=0, description="Times it started before it was quarantined.")
    replay_of: str | None = Field(
        description="The dead letter this task was a replay of, if it was one."
    )
    created_at: datetime | None = Field(description="When the task was submitted.")
    dead_lettered_at: datetime = Field(description="When it was quarantined.")
    links: DeadLetterLinks


class DeadLetterPage(Closed):
    """One page of the tenant's dead letters, newest first."""

    items: list[DeadLetterView]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")
    links: PageLinks


class TaskEvent(Closed):
    """One event of a task: the `data:` of an SSE event, or a WebSocket `event` message."""

    task_id: str
    seq: int = Field(ge=1, description="1, 2, 3, ... per task; the SSE `id:`.")
    event: Event
    status: Status = Field(description="The task's status after this event.")
    time: float | None = Field(description="Unix time; null on a summary of an expired stream.")
    data: dict[str, Any] = Field(description="`progress`, `result`, `error`, `reason`, ...")


class WsCommand(Closed):
    """What a WebSocket client sends: follow a task, or stop following it."""

    action: Literal["subscribe", "unsubscribe"]
    task_id: str
    after: int = Field(default=0, ge=0, description="Replay events after this one.")


class WsMessage(BaseModel):
    """What the server sends: `subscribed`, `unsubscribed`, `event` (+ the event) or `error`."""

    model_config = ConfigDict(extra="allow")

    type: Literal["subscribed", "unsubscribed", "event", "error"]
    task_id: str | None = None
    status: int | str | None = Field(
        default=None, description="On `error`, an HTTP-like code; on `event`, the task status."
    )
    detail: str | None = None
