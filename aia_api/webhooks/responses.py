"""Response models of the webhook routes (shared ones: ``aia_api.http.responses``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from aia_api.http.responses import Closed, PageLinks, SelfLinks

__all__ = [
    "AttemptPage",
    "EndpointPage",
    "EndpointView",
    "EventTypeList",
    "MessagePage",
    "MessageStatus",
    "MessageView",
    "NewEndpoint",
    "Recovered",
]

MessageStatus = Literal["pending", "sending", "delivered", "failed"]


class EndpointView(Closed):
    id: str
    url: str
    description: str | None
    events: list[str]
    enabled: bool
    disabled_reason: str | None = Field(description="Why it was disabled (410, long failure).")
    failing_since: datetime | None = Field(description="First failure since the last success.")
    last_success_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until then, the secret before the last rotation signs too."
    )
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    links: SelfLinks


class NewEndpoint(EndpointView):
    secret: str = Field(description="`whsec_...`: shown this once; verify signatures with it.")


class EndpointPage(Closed):
    items: list[EndpointView]
    next_cursor: str | None
    links: PageLinks


class MessageView(Closed):
    id: str = Field(description="The `webhook-id` header of every attempt.")
    endpoint_id: str
    event_type: str
    payload: dict[str, Any]
    status: MessageStatus
    attempts: int
    trigger: Literal["scheduled", "manual", "replay"]
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    links: SelfLinks


class MessagePage(Closed):
    items: list[MessageView]
    next_cursor: str | None
    links: PageLinks


class _Attempt(Closed):
    id: str
    message_id: str
    attempt: int
    trigger: Literal["scheduled", "manual", "replay"]
    url: str
    status_code: int | None
    succeeded: bool
    duration_ms: float
    response_body: str | None = Field(description="The start of the reply's body.")
    error: str | None = Field(description="Timeout, refused connection, SSRF refusal...")
    next_attempt_at: datetime | None
    created_at: datetime


class AttemptPage(Closed):
    items: list[_Attempt]
    next_cursor: str | None
    links: PageLinks


class Recovered(Closed):
    resent: int = Field(description="How many failed messages were queued again.")


class _EventType(Closed):
    name: str
    description: str
    schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema of `data`.")


class EventTypeList(Closed):
    items: list[_EventType]
