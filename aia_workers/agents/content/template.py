"""``{{placeholders}}`` in a Markdown template, filled by looking names up, never by evaluating."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from aia_workers.agents.contracts import AgentInputError

__all__ = ["fill", "placeholders"]

# A dotted path of names and list positions: {{ analysis.regression.r_squared }}.
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*)\s*\}\}")


def placeholders(template: str) -> list[str]:
    """The paths the template names, in order of first use."""
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(template)))


def fill(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with each ``{{path}}`` replaced by the value at that path in ``values``.

    A path is names (and list indices) joined by dots; nothing is evaluated, so
    a template can read the input but never run code. Strings go in as they
    are, numbers as written by ``_text``, lists of plain values joined by
    commas. AgentInputError names a path that leads nowhere or to an object.
    """
    resolved = {path: _text(path, _lookup(values, path)) for path in placeholders(template)}
    return _PLACEHOLDER.sub(lambda m: resolved[m.group(1)], template)


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    current: Any = values
    walked: list[str] = []
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif (
            isinstance(current, Sequence)
            and not isinstance(current, str)
            and part.isdigit()
            and int(part) < len(current)
        ):
            current = current[int(part)]
        else:
            where = ".".join(walked) or "the input"
            choices = _choices(current)
            raise AgentInputError(
                f"the template names {{{{{path}}}}}, but {where} has no {part!r}"
                + (f"; it has {choices}" if choices else "")
            )
        walked.append(part)
    return current


def _choices(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(sorted(map(str, value))[:20])
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        return f"positions 0 to {len(value) - 1}"
    return ""


def _text(path: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, Sequence) and all(
        v is None or isinstance(v, str | int | float) for v in value
    ):
        return ", ".join(_text(path, v) for v in value)
    if isinstance(value, Mapping):
        raise AgentInputError(
            f"the template's {{{{{path}}}}} is an object; name one of its fields "
            f"({_choices(value)}), e.g. {{{{{path}.{next(iter(value), 'field')}}}}}"
        )
    return json.dumps(value, ensure_ascii=False, default=str)
