"""Request models of the task routes."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aia_api.http.openapi import Json, Mode, Schemas
from aia_workers.backbone.broker import PRIORITY_MAX
from aia_workers.backbone.catalog import TaskType

__all__ = ["SubmitRequest", "SubmitVariants"]


class SubmitRequest(BaseModel):
    """``POST /v1/tasks``: what to run, with what, and when."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=128, description="A task type from the catalog.")
    payload: dict[str, Any] = Field(default_factory=dict)
    countdown: float | None = Field(
        default=None, ge=0, description="Seconds to wait before the task may start."
    )
    priority: int | None = Field(
        default=None,
        ge=0,
        le=PRIORITY_MAX,
        description="0-9; higher runs sooner. Operators may set up to "
        "AIA_OPERATOR_MAX_PRIORITY (5 by default), admins up to 9.",
    )


@dataclass(frozen=True)
class SubmitVariants:
    """The submit body's schema: one ``SubmitRequest.<type>`` per task type of ``catalog``.

    SubmitRequest alone types the payload as any object; a client (and the
    schemathesis fuzz) needs each type's own payload schema, so every variant
    is SubmitRequest with ``type`` fixed and that type's payload in place.
    """

    catalog: Mapping[str, TaskType]

    def models(self) -> Iterable[tuple[type[BaseModel], Mode]]:
        yield SubmitRequest, "validation"
        for task_type in self.catalog.values():
            yield task_type.payload, "validation"

    def render(self, schemas: Schemas) -> Json:
        base = schemas.schema(SubmitRequest)
        mapping: dict[str, str] = {}
        for type_name, task_type in sorted(self.catalog.items()):
            properties = copy.deepcopy(base["properties"])
            properties["type"] = {"type": "string", "const": type_name}
            properties["payload"] = schemas.ref(task_type.payload)
            required = ["type"]
            if schemas.schema(task_type.payload).get("required"):
                required.append("payload")
            variant = schemas.add(
                f"SubmitRequest.{type_name}",
                {
                    "title": f"Submit {type_name}",
                    "description": (
                        f"{task_type.description} Runs on the `{task_type.queue.value}` queue, "
                        f"needs `{task_type.permission}`, at most "
                        f"{task_type.time_limit_seconds} s."
                    ),
                    "type": "object",
                    "properties": properties,
                    "required": required,
                    "additionalProperties": False,
                },
            )
            mapping[type_name] = variant["$ref"]
        return {
            "oneOf": [{"$ref": ref} for ref in mapping.values()],
            "discriminator": {"propertyName": "type", "mapping": mapping},
        }
