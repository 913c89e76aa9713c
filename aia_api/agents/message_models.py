"""Request and response models of an agent's mailbox: ``/v1/agents/{agent_id}/messages``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aia_api.http.responses import Closed, PageLinks

__all__ = ["AgentMessagePage", "AgentMessageRequest", "AgentMessageView"]


class AgentMessageRequest(BaseModel):
    """A message to an agent."""

    model_config = ConfigDict(extra="forbid")

    body: dict[str, Any] = Field(
        description="Any JSON object, at most `AIA_AGENT_MESSAGE_MAX_BYTES` (64 KiB) of JSON."
    )


class AgentMessageView(Closed):
    id: str
    agent_id: str = Field(description="The recipient.")
    sender: str = Field(
        description="`agent:<id>` when an agent's run sent it, else who posted it "
        "(`key:<id>`, `user:<id>`)."
    )
    seq: int = Field(description="The sender's messages to this agent are numbered 1, 2, ...")
    position: int = Field(
        description="Its place in the mailbox, 1, 2, ... in the order messages were stored; "
        "the mailbox stream's event id."
    )
    body: dict[str, Any]
    deliveries: int = Field(description="How many runs were handed it so far.")
    created_at: datetime
    acked_at: datetime | None = Field(description="When a run acknowledged it; null: pending.")
    acked_by: str | None = Field(description="The run (task id) that acknowledged it.")


class AgentMessagePage(Closed):
    items: list[AgentMessageView]
    next_cursor: str | None
    links: PageLinks
