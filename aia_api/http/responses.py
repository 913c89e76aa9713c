"""Response models of the API, for its OpenAPI document.

The routes build their JSON by hand (orjson, for speed); these models only
describe it. tests/e2e/ops/test_openapi.py checks real responses against them, so a
field added to a view and not here fails there rather than going undocumented.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aia_api.identity.roles import Role
from aia_workers.backbone.states import Event, Queue, Status

__all__ = [
    "Closed",
    "DeadLetterLinks",
    "DeadLetterPage",
    "DeadLetterView",
    "DependencyCheck",
    "FieldError",
    "Health",
    "KeyList",
    "KeyView",
    "MfaEnabled",
    "MfaEnrollment",
    "NewKey",
    "PageLinks",
    "ProblemDetails",
    "SelfLinks",
    "StatusReport",
    "TaskEvent",
    "TaskLinks",
    "TaskPage",
    "TaskView",
    "TokenResponse",
    "WsCommand",
    "WsMessage",
]


class Closed(BaseModel):
    """A response model that lists every field it may have."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SelfLinks(BaseModel):
    """``links`` with at least ``self``; a view may add more."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    self_: str = Field(alias="self")


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


class PageLinks(Closed):
    self_: str = Field(alias="self")
    next: str | None = Field(default=None, description="The next page, when there is one.")


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


class TokenResponse(Closed):
    access_token: str = Field(description="A JWT; send as `Authorization: Bearer <token>`.")
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str = Field(description="Works once: trade it at /v1/auth/refresh.")
    refresh_expires_in: int = Field(description="Seconds the refresh token is valid.")


class MfaEnrollment(Closed):
    secret: str = Field(description="The TOTP secret (base32), not in force until verified.")
    otpauth_uri: str = Field(description="The same as an `otpauth://` URI, for a QR code.")


class MfaEnabled(Closed):
    mfa_enabled: Literal[True]
    recovery_codes: list[str] = Field(description="One-time codes for a lost device; shown once.")


class KeyView(Closed):
    id: str
    name: str
    role: Role
    prefix: str = Field(description="The first characters of the key, to recognise it by.")
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class DatasetColumn(Closed):
    name: str
    kind: Literal["numeric", "categorical", "boolean", "datetime", "text"]
    missing: int = Field(description="Cells with no value (empty, NA, null, ...).")
    distinct: int


class DatasetLinks(Closed):
    self_: str = Field(alias="self")


class DatasetView(Closed):
    id: str
    name: str
    rows: int
    columns: list[DatasetColumn]
    size_bytes: int
    sha256: str
    created_at: datetime
    links: DatasetLinks


class DatasetPage(Closed):
    """One page of the tenant's datasets, newest first."""

    items: list[DatasetView]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")
    links: PageLinks


class NewKey(KeyView):
    key: str = Field(description="The key itself (`aia_...`), shown this once only.")


class KeyList(Closed):
    items: list[KeyView]


class AuditEntry(Closed):
    id: str
    action: str = Field(
        description="e.g. login, lockout, refresh.reuse, key.create, key.revoke, "
        "mfa.enroll, mfa.enable, mfa.disable, mfa.reset, role.change, user.delete, "
        "permission.denied"
    )
    outcome: str = Field(description="success, failure or locked")
    actor: str | None
    client_address: str | None
    detail: dict[str, Any] | None
    created_at: str


class AuditPage(Closed):
    """One page of the tenant's audit log, newest first."""

    items: list[AuditEntry]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")
    links: PageLinks


class Health(Closed):
    status: Literal["ok"]


class DependencyCheck(BaseModel):
    """One dependency's check; a healthy one adds what it found (queue depths, workers)."""

    model_config = ConfigDict(extra="allow")

    ok: bool
    latency_ms: float | None = None
    error: str | None = Field(default=None, description="Why the check failed.")


class StatusReport(Closed):
    status: Literal["ok", "degraded"]
    checks: dict[str, DependencyCheck] = Field(
        description="By dependency: `database`, `redis`, `broker`, `workers`."
    )


class FieldError(Closed):
    loc: list[str | int] = Field(description="Where: `body`/`query` path segments.")
    pointer: str = Field(description="The same place as a JSON pointer.")
    message: str
    type: str = Field(description="A machine-readable error kind, e.g. `missing`.")


class ProblemDetails(BaseModel):
    """An RFC 9457 problem; some problems add members (e.g. `task_id`, `permission`)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URN naming the problem: `urn:aia:problem:<slug>`.")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[FieldError] | None = Field(default=None, description="One entry per field.")


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
