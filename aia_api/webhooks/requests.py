"""Request models of the webhook routes."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from aia_workers.webhooks.catalog import EVENT_TYPES, TEST_EVENT
from aia_workers.webhooks.ssrf import parse_url

__all__ = ["EndpointPatch", "EndpointRequest", "RecoverRequest"]

_SUBSCRIBABLE = sorted(n for n in EVENT_TYPES if n != TEST_EVENT)


def _check_url(url: str) -> str:
    parse_url(url)  # its ValueError becomes the field's 422
    return url


def _check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENT_TYPES or e == TEST_EVENT]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(_SUBSCRIBABLE)}")
    return sorted(set(events))


class EndpointRequest(BaseModel):
    """Where to send which events."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="http(s) URL that receives POSTs.")
    events: list[str] = Field(min_length=1, max_length=50, description="Event types to send.")
    description: str | None = Field(default=None, max_length=500)

    _url = field_validator("url")(_check_url)
    _events = field_validator("events")(_check_events)


class EndpointPatch(BaseModel):
    """Change an endpoint; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_events(value)


class RecoverRequest(BaseModel):
    """Resend every message that failed for good since ``since``."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime
