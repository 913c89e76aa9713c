"""Response models shared by every domain: closed objects, links, problems.

The routes build their JSON by hand (orjson, for speed); these models only
describe it. tests/e2e/ops/test_openapi.py checks real responses against them, so a
field added to a view and not here fails there rather than going undocumented.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Closed",
    "FieldError",
    "PageLinks",
    "ProblemDetails",
    "SelfLinks",
]


class Closed(BaseModel):
    """A response model that lists every field it may have."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SelfLinks(BaseModel):
    """``links`` with at least ``self``; a view may add more."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    self_: str = Field(alias="self")


class PageLinks(Closed):
    self_: str = Field(alias="self")
    next: str | None = Field(default=None, description="The next page, when there is one.")


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
