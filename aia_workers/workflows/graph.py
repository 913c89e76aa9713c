"""A workflow's graph: its steps, the checks a graph must pass, and its levels.

Light: the API validates a new workflow with this module. A step runs after
the steps it names in ``after`` and those it takes input from
(``inputs_from``); the graph must be acyclic, with unique ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aia_workers.agents.contracts import AgentType

__all__ = [
    "MAX_STEPS",
    "GraphIssue",
    "StepSpec",
    "check_graph",
    "check_inputs",
    "dependencies",
    "levels",
]

MAX_STEPS = 100
STEP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class StepSpec(BaseModel):
    """One step: an agent, its static input, and where the rest of its input comes from."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=STEP_ID_PATTERN, description="Unique in the workflow.")
    agent_id: str = Field(min_length=1, max_length=64, description="An agent of the tenant.")
    input: dict[str, Any] = Field(
        default_factory=dict, description="The part of the run's input known now."
    )
    after: list[str] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        description="Steps that must succeed before this one starts.",
    )
    inputs_from: dict[str, str] = Field(
        default_factory=dict,
        description="Input field -> step id: the field gets that step's whole output "
        "(a JSON object); the step runs after it.",
    )


@dataclass(frozen=True, slots=True)
class GraphIssue:
    """Why a graph or a step's input is refused, at ``loc`` (e.g. ``("steps", 2, "after", 0)``)."""

    loc: tuple[str | int, ...]
    message: str
    type: str


def dependencies(step: StepSpec) -> list[str]:
    """The steps ``step`` waits for, each once, in the order it names them."""
    return list(dict.fromkeys([*step.after, *step.inputs_from.values()]))


def check_graph(steps: Sequence[StepSpec]) -> list[GraphIssue]:
    """What is wrong with the graph's shape: duplicate ids, unknown or own steps named,
    a field both given and taken from a step, a cycle. Empty when it is sound."""
    issues: list[GraphIssue] = []
    seen: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.id in seen:
            issues.append(
                GraphIssue(
                    ("steps", i, "id"),
                    f"step id {step.id!r} is used by step {seen[step.id]} already; "
                    "ids must be unique",
                    "duplicate",
                )
            )
        else:
            seen[step.id] = i
    for i, step in enumerate(steps):
        for j, name in enumerate(step.after):
            issues.extend(_reference(step, name, seen, ("steps", i, "after", j)))
        for field, name in step.inputs_from.items():
            where: tuple[str | int, ...] = ("steps", i, "inputs_from", field)
            issues.extend(_reference(step, name, seen, where))
            if field in step.input:
                issues.append(
                    GraphIssue(
                        where,
                        f"step {step.id!r}: input field {field!r} is given in input and "
                        f"taken from step {name!r}; keep one",
                        "conflict",
                    )
                )
    if issues:
        return issues
    cycle = _cycle(steps)
    if cycle:
        # Told from the step the workflow lists first, so the message is stable.
        start = min(range(len(cycle)), key=lambda k: seen[cycle[k]])
        cycle = cycle[start:] + cycle[:start]
        first = seen[cycle[0]]
        path = " -> ".join([*cycle, cycle[0]])
        issues.append(
            GraphIssue(
                ("steps", first, "after"),
                f"the steps depend on each other in a cycle ({path}); a workflow is acyclic",
                "cycle",
            )
        )
    return issues


def _reference(
    step: StepSpec, name: str, ids: Mapping[str, int], loc: tuple[str | int, ...]
) -> list[GraphIssue]:
    if name == step.id:
        return [GraphIssue(loc, f"step {step.id!r} cannot depend on itself", "self")]
    if name not in ids:
        known = ", ".join(sorted(ids))
        return [
            GraphIssue(
                loc,
                f"step {step.id!r} names step {name!r}, which the workflow does not have "
                f"(its steps: {known})",
                "unknown_step",
            )
        ]
    return []


def _cycle(steps: Sequence[StepSpec]) -> list[str]:
    """One cycle of the graph, as the steps along it; empty when there is none."""
    deps = {s.id: dependencies(s) for s in steps}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in deps[node]:
            if state.get(dep) == 1:
                return path[path.index(dep) :]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for step in steps:
        if step.id not in state:
            found = visit(step.id)
            if found:
                # Written in the direction work flows: each step runs before the next.
                return list(reversed(found))
    return []


def levels(steps: Sequence[StepSpec], done: Sequence[str] = ()) -> list[list[str]]:
    """The steps still to run, grouped so that each group's steps depend only on steps
    of earlier groups or in ``done``; a step is in the earliest group it can be.

    The graph must have passed ``check_graph``. Within a group, steps keep the
    order the workflow lists them in.
    """
    finished = set(done)
    level: dict[str, int] = {}
    todo = [s for s in steps if s.id not in finished]
    by_id = {s.id: s for s in todo}

    def depth(step: StepSpec) -> int:
        if step.id not in level:
            ups = [by_id[d] for d in dependencies(step) if d in by_id]
            level[step.id] = 1 + max((depth(u) for u in ups), default=-1)
        return level[step.id]

    out: list[list[str]] = []
    for step in todo:
        n = depth(step)
        while len(out) <= n:
            out.append([])
    for step in todo:
        out[level[step.id]].append(step.id)
    return out


def check_inputs(
    steps: Sequence[StepSpec], kinds: Mapping[str, type[AgentType[Any, Any]]]
) -> list[GraphIssue]:
    """What each step's input lacks or gets wrong for its agent's type (``kinds``: step id ->
    type), as far as it is known before the run: the fields filled from upstream outputs
    are taken as present, of whatever shape they will have."""
    issues: list[GraphIssue] = []
    for i, step in enumerate(steps):
        kind = kinds.get(step.id)
        if kind is None:
            continue
        # A stand-in for each field an upstream step will fill: errors about its value
        # are unknowable now, but one saying the type has no such field is not.
        trial = {**step.input, **dict.fromkeys(step.inputs_from, None)}
        try:
            kind.input_model.model_validate(trial)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_context=False, include_input=False):
                loc = tuple(err["loc"])
                field = loc[0] if loc else None
                if field in step.inputs_from and err["type"] != "extra_forbidden":
                    continue
                at: tuple[str | int, ...] = ("steps", i, "input", *loc)
                if field in step.inputs_from:
                    at = ("steps", i, "inputs_from", *loc)
                where = ".".join(str(p) for p in loc) or "input"
                issues.append(
                    GraphIssue(
                        at,
                        f"step {step.id!r} (agent type {kind.name!r}): {where}: {err['msg']}",
                        err["type"],
                    )
                )
    return issues
