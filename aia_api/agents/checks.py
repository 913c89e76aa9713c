"""What the agent routes check before they store or submit: the type, a config, an input."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from aia_api.http.problems import Problem, field_errors
from aia_workers.agents.contracts import AgentType
from aia_workers.agents.types import AgentTypes, UnknownAgentTypeError

__all__ = ["check_config", "check_input", "check_type"]


def _invalid(errors: list[dict[str, Any]], detail: str | None = None) -> Problem:
    return Problem(
        422,
        "validation-error",
        "Invalid request",
        detail or "the request does not match the schema; see errors for each field",
        errors=errors,
    )


def check_type(types: AgentTypes, name: str, field: str = "type") -> type[AgentType[Any, Any]]:
    """The agent type ``name``, or a 422 naming ``field`` and the types there are."""
    try:
        return types.get(name)
    except UnknownAgentTypeError as exc:
        error = {"loc": [field], "pointer": f"/{field}", "message": str(exc), "type": "unknown"}
        raise _invalid([error], str(exc)) from None


def _check(model: type[BaseModel], value: dict[str, Any], field: str) -> BaseModel:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise _invalid(field_errors(exc, (field,))) from None


def check_config(kind: type[AgentType[Any, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as the type's config model accepts it (JSON), or a 422 naming the field."""
    return _check(kind.config_model, config, "config").model_dump(mode="json", by_alias=True)


def check_input(kind: type[AgentType[Any, Any]], inputs: dict[str, Any]) -> None:
    """Nothing, or a 422 naming the field of ``inputs`` the type's input model refuses."""
    _check(kind.input_model, inputs, "input")
