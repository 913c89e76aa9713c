"""The registry of agent types: every entry point of the group ``aia.agents``, loaded once.

A package adds a type by declaring an entry point (``name = "module:Class"``)
whose class subclasses ``AgentType`` and carries that same ``name``. Loading
runs third-party code, so an entry point that fails to import, names something
that is not an agent type, or names a class whose ``name`` differs is kept as
a broken entry, with the reason, for ``GET /v1/agents/types`` to show: one bad
plugin must never take the API or a worker down with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from aia_workers.agents.contracts import AgentType
from aia_workers.errors import AiaError

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentTypes",
    "BrokenType",
    "UnknownAgentTypeError",
    "agent_type",
    "agent_types",
    "load_agent_types",
]

ENTRY_POINT_GROUP = "aia.agents"

log = logging.getLogger(__name__)


class UnknownAgentTypeError(AiaError):
    """Raised when no loaded agent type has the name asked for (or its plugin is broken)."""


@dataclass(frozen=True, slots=True)
class BrokenType:
    """An entry point that did not give a usable agent type, and why."""

    name: str
    target: str  # the entry point's value, "module:attribute"
    distribution: str | None
    error: str


@dataclass(frozen=True, slots=True)
class AgentTypes:
    """The types this process loaded, by name, and the entry points that failed."""

    types: Mapping[str, type[AgentType[Any, Any]]]
    schemas: Mapping[str, Mapping[str, Any]]
    broken: tuple[BrokenType, ...] = field(default=())

    def get(self, name: str) -> type[AgentType[Any, Any]]:
        """The type called ``name``; UnknownAgentTypeError naming the known ones otherwise."""
        found = self.types.get(name)
        if found is not None:
            return found
        for entry in self.broken:
            if entry.name == name:
                raise UnknownAgentTypeError(
                    f"agent type {name!r} is installed but could not be loaded: {entry.error}"
                )
        known = ", ".join(sorted(self.types)) or "none"
        raise UnknownAgentTypeError(f"unknown agent type {name!r}; known types: {known}")


def _distribution(entry: EntryPoint) -> str | None:
    dist = getattr(entry, "dist", None)
    return None if dist is None else str(dist.name)


def _check(entry: EntryPoint, loaded: Any) -> str | None:
    """Why ``loaded`` is not a usable agent type for ``entry``, or None when it is."""
    if not isinstance(loaded, type) or not issubclass(loaded, AgentType):
        return f"{entry.value} is not a subclass of aia_workers.agents.contracts.AgentType"
    declared = getattr(loaded, "name", None)
    if declared != entry.name:
        return (
            f"{entry.value} has name {declared!r} but is registered as {entry.name!r}; "
            "the class's name must be the entry point's"
        )
    for attribute in ("config_model", "input_model"):
        model = getattr(loaded, attribute, None)
        if not isinstance(model, type) or not issubclass(model, BaseModel):
            return f"{entry.value}.{attribute} must be a pydantic model class"
    if not isinstance(getattr(loaded, "summary", None), str):
        return f"{entry.value}.summary must be a string"
    if loaded.run is AgentType.run:
        return f"{entry.value} does not implement run()"
    return None


def load_agent_types(entries: Iterable[EntryPoint] | None = None) -> AgentTypes:
    """Load ``entries`` (by default every ``aia.agents`` entry point installed), afresh."""
    if entries is None:
        entries = entry_points(group=ENTRY_POINT_GROUP)
    types: dict[str, type[AgentType[Any, Any]]] = {}
    schemas: dict[str, Mapping[str, Any]] = {}
    broken: list[BrokenType] = []
    for entry in sorted(entries, key=lambda e: (e.name, e.value)):

        def fail(error: str, entry: EntryPoint = entry) -> None:
            broken.append(BrokenType(entry.name, entry.value, _distribution(entry), error))

        if entry.name in types:
            fail(f"another plugin registered {entry.name!r} first; type names must be unique")
            continue
        try:
            loaded = entry.load()
        except Exception as exc:
            # Anything a plugin's import raises: its bug must not be the host's.
            fail(f"could not be imported: {type(exc).__name__}: {exc}")
            continue
        problem = _check(entry, loaded)
        if problem is not None:
            fail(problem)
            continue
        try:
            # Made now, once: a model pydantic cannot describe is a broken plugin,
            # not a failure of every later listing.
            schema = dict(loaded.schemas())
        except Exception as exc:
            fail(f"its JSON Schemas could not be made: {type(exc).__name__}: {exc}")
            continue
        types[entry.name] = loaded
        schemas[entry.name] = MappingProxyType(schema)
    return AgentTypes(MappingProxyType(types), MappingProxyType(schemas), tuple(broken))


_lock = threading.RLock()
_loaded: AgentTypes | None = None


def agent_types() -> AgentTypes:
    """This process's agent types, loaded from the entry points on first use.

    Once per process: installing a plugin takes a restart, as a new Python
    package always does.
    """
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = load_agent_types()
            for entry in _loaded.broken:
                log.warning(
                    "agent type %r (%s, from %s) is not usable: %s",
                    entry.name,
                    entry.target,
                    entry.distribution or "an unknown distribution",
                    entry.error,
                )
        return _loaded


def agent_type(name: str) -> type[AgentType[Any, Any]]:
    """The agent type called ``name``; UnknownAgentTypeError (naming the known ones) if none."""
    return agent_types().get(name)
