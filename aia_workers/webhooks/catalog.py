"""The events AIA tells other systems about, each with the schema of its payload.

Light: the API imports it to validate subscriptions and describe the events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EVENT_TYPES", "TEST_EVENT", "EventType", "event_type"]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")


class TaskFinished(_Payload):
    """A task reached a terminal state."""

    task_id: str
    type: str = Field(description="The task type, a key of the task catalog.")
    queue: str
    status: str = Field(description="succeeded, failed or cancelled.")
    result: Any = Field(default=None, description="What the task returned, if it succeeded.")
    error: Any = Field(default=None, description="Why it failed: `{type, message}`.")
    created_at: datetime | None = None
    finished_at: datetime | None = None


class ModelVersionCreated(_Payload):
    """A training run registered a new model version."""

    model: str
    version: int
    experiment_id: str
    run_id: str
    estimator: str
    metrics: dict[str, Any]


class ModelAliasChanged(_Payload):
    """An alias of a model moved (or was removed: ``to_version`` null)."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    changed_by: str | None
    reason: str | None = None
    details: dict[str, Any] | None = Field(
        default=None,
        description="When a retrain moved it: the trigger, the metric, both models' "
        "scores on the holdout, the margin and the decision.",
    )


class WebhookTest(_Payload):
    """Sent by ``POST /v1/webhooks/{id}/test`` to check an endpoint."""

    endpoint_id: str
    message: str


class DriftDetected(_Payload):
    """A drift check found a model's inputs or outputs moved away from its reference."""

    model: str
    version: int
    report_id: str | None = Field(
        default=None, description="The stored report: GET /v1/ml/models/{model}/drift/{id}."
    )
    drifted_share: float | None = Field(
        default=None, description="The share of the features that drifted."
    )
    drift_share: float | None = Field(
        default=None, description="The share at which the dataset counts as drifted."
    )
    drifted_features: list[str] = Field(default_factory=list)
    prediction_drifted: bool | None = Field(
        default=None, description="Whether the model's outputs drifted too (null: not checked)."
    )
    window: dict[str, Any] | None = Field(
        default=None,
        description="The current data: `{kind: predictions, since, until, rows}` or "
        "`{kind: dataset, dataset_id, rows}`.",
    )


class AgentMessage(_Payload):
    """A message reached an agent's mailbox, from another agent's run or over the API."""

    message_id: str
    agent_id: str = Field(description="The recipient.")
    agent: str = Field(description="The recipient's name.")
    sender: str = Field(
        description="`agent:<id>` when an agent's run sent it, else who posted it "
        "(`key:<id>`, `user:<id>`)."
    )
    seq: int = Field(description="The sender's messages to this agent are numbered 1, 2, ...")
    position: int = Field(description="Its place in the recipient's mailbox, 1, 2, ...")
    body: dict[str, Any]
    created_at: datetime | None = None


class AlertFired(_Payload):
    """A monitoring agent's rule started firing (``state: firing``) or stopped (``resolved``)."""

    alert: str = Field(description="What happened, in one sentence.")
    state: str = Field(description="firing or resolved.")
    rule: str = Field(description="The rule's name in the agent's configuration.")
    signal: str = Field(
        description="queue_depth, oldest_age_seconds, failure_rate, drifted_models or "
        "webhook_dead_letters."
    )
    value: float | None = Field(description="The signal's value at this run.")
    op: str = Field(description="How value is compared with threshold: gt, ge, lt or le.")
    threshold: float
    agent_id: str
    run_id: str | None = Field(default=None, description="The agents.run task that saw it.")
    queue: str | None = None
    task_type: str | None = None
    window_seconds: int | None = None
    samples: int | None = Field(default=None, description="What a rate stands on.")
    detail: dict[str, Any] = Field(
        default_factory=dict, description="Counts and names behind the value."
    )
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    payload: type[BaseModel]
    description: str


TEST_EVENT = "webhook.test"

_TYPES = (
    EventType("task.succeeded", TaskFinished, "A task succeeded; the payload has its result."),
    EventType("task.failed", TaskFinished, "A task failed for good (no retries left)."),
    EventType("task.cancelled", TaskFinished, "A task was cancelled."),
    EventType("model.version_created", ModelVersionCreated, "A run registered a model version."),
    EventType("model.alias_changed", ModelAliasChanged, "A model alias moved."),
    EventType("model.drift_detected", DriftDetected, "A drift check found drift."),
    EventType("agent.message", AgentMessage, "A message reached an agent's mailbox."),
    EventType("alert.fired", AlertFired, "A monitoring rule started firing, or was resolved."),
    EventType(TEST_EVENT, WebhookTest, "A test delivery, on request."),
)

EVENT_TYPES: Mapping[str, EventType] = MappingProxyType({t.name: t for t in _TYPES})


def event_type(name: str) -> EventType:
    """The catalog entry for ``name``; ValueError naming the known ones."""
    try:
        return EVENT_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(EVENT_TYPES))
        raise ValueError(f"unknown event type {name!r}; known: {known}") from None
