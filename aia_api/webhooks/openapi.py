"""The webhook routes' tag and parameters (kept once under the document's components/parameters)."""

from __future__ import annotations

from typing import get_args

from aia_api.http.openapi import Param, Tag, path_param
from aia_api.webhooks.responses import MessageStatus

__all__ = [
    "ATTEMPT_OUTCOME",
    "ATTEMPT_OUTCOMES",
    "ENDPOINT_ID",
    "EVENT_TYPE",
    "MESSAGE_ID",
    "MESSAGE_ID_PATH",
    "MESSAGE_STATUS",
    "MESSAGE_STATUSES",
    "NEEDS",
    "WEBHOOKS",
]

WEBHOOKS = Tag("webhooks", "Signed deliveries of events to your endpoints, with retries.")
NEEDS = "Needs `webhooks:manage`."

MESSAGE_STATUSES: tuple[str, ...] = get_args(MessageStatus)
ATTEMPT_OUTCOMES = ("succeeded", "failed")

ENDPOINT_ID = path_param("EndpointId", "endpoint_id", "The webhook endpoint's id.")
MESSAGE_ID_PATH = path_param("MessageIdPath", "message_id", "The message's id (its `webhook-id`).")
MESSAGE_ID = Param(
    "MessageId",
    {
        "name": "message_id",
        "in": "query",
        "required": False,
        "description": "Only this message's attempts.",
        "schema": {"type": "string", "maxLength": 64},
    },
)
MESSAGE_STATUS = Param(
    "MessageStatus",
    {
        "name": "status",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": list(MESSAGE_STATUSES)},
    },
)
EVENT_TYPE = Param(
    "EventType",
    {
        "name": "event_type",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 64},
    },
)
ATTEMPT_OUTCOME = Param(
    "AttemptOutcome",
    {
        "name": "outcome",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": list(ATTEMPT_OUTCOMES)},
    },
)
