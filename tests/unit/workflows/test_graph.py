"""A workflow's graph: the checks it must pass, its levels, and the canvas built from them."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from celery.canvas import Signature, _chain, _chord, group
from pydantic import BaseModel, ConfigDict

from aia_workers.agents.contracts import AgentContext, AgentType
from aia_workers.workflows.canvas import build_canvas, step_signature
from aia_workers.workflows.graph import StepSpec, check_graph, check_inputs, levels


def _steps(*specs: dict[str, Any]) -> list[StepSpec]:
    return [StepSpec.model_validate({"agent_id": "x", **s}) for s in specs]


def _locs(steps: list[StepSpec]) -> list[tuple[Any, ...]]:
    return [issue.loc for issue in check_graph(steps)]


def test_a_sound_graph_passes() -> None:
    steps = _steps({"id": "a"}, {"id": "b", "after": ["a"]}, {"id": "c", "inputs_from": {"x": "b"}})
    assert check_graph(steps) == []


def test_ids_repeated_steps_unknown_or_itself_are_named() -> None:
    assert _locs(_steps({"id": "a"}, {"id": "a"})) == [("steps", 1, "id")]
    assert _locs(_steps({"id": "a", "after": ["b"]})) == [("steps", 0, "after", 0)]
    assert _locs(_steps({"id": "a", "inputs_from": {"f": "a"}})) == [
        ("steps", 0, "inputs_from", "f")
    ]
    both = _steps({"id": "a"}, {"id": "b", "input": {"f": 1}, "inputs_from": {"f": "a"}})
    assert [i.type for i in check_graph(both)] == ["conflict"]


def test_a_cycle_is_refused_naming_its_steps() -> None:
    steps = _steps(
        {"id": "a", "after": ["c"]}, {"id": "b", "after": ["a"]}, {"id": "c", "after": ["b"]}
    )
    (issue,) = check_graph(steps)
    assert issue.type == "cycle"
    assert "a -> b -> c -> a" in issue.message


def test_levels_put_each_step_after_all_it_waits_for() -> None:
    steps = _steps(
        {"id": "research"},
        {"id": "analysis"},
        {"id": "content", "inputs_from": {"research": "research", "analysis": "analysis"}},
        {"id": "notify", "after": ["content"]},
        {"id": "late", "after": ["research"]},
    )
    assert levels(steps) == [["research", "analysis"], ["content", "late"], ["notify"]]
    # A resume: the steps done are left out and satisfy those after them.
    assert levels(steps, done=["research", "analysis"]) == [["content", "late"], ["notify"]]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    upstream: dict[str, Any]
    count: int = 1


class _Kind(AgentType[BaseModel, _Input]):
    name = "kind"
    summary = "for the checks"
    config_model = BaseModel
    input_model = _Input

    def run(self, inputs: _Input, ctx: AgentContext) -> dict[str, Any]:
        return {}


def test_an_input_is_checked_with_the_upstream_fields_taken_as_present() -> None:
    def issues(**step: Any) -> list[tuple[Any, ...]]:
        steps = _steps({"id": "up"}, {"id": "s", **step})
        return [i.loc for i in check_inputs(steps, {"s": _Kind})]

    assert issues(input={"text": "hi"}, inputs_from={"upstream": "up"}) == []
    assert issues(input={"text": "hi"}) == [("steps", 1, "input", "upstream")]
    assert issues(input={"text": "hi", "count": "many"}, inputs_from={"upstream": "up"}) == [
        ("steps", 1, "input", "count")
    ]
    assert issues(input={"text": "hi"}, inputs_from={"upstream": "up", "nope": "up"}) == [
        ("steps", 1, "inputs_from", "nope")
    ]


def _shape(sig: Any) -> Any:
    if isinstance(sig, _chord):
        return ("chord", _shape(sig.tasks), _shape(sig.body))
    if isinstance(sig, _chain):
        return ("chain", [_shape(t) for t in sig.tasks])
    if isinstance(sig, group):
        return ("group", [_shape(t) for t in sig.tasks])
    if isinstance(sig, list | tuple):
        return [_shape(t) for t in sig]
    assert isinstance(sig, Signature)
    assert sig.immutable
    assert sig.options["queue"] == "agents"
    step = sig.kwargs["payload"]["step_id"]
    assert sig.options["task_id"] == f"task-{step}"
    assert sig.kwargs == {
        "payload": {"run_id": "r1", "step_id": step, "agent_id": f"agent-{step}"},
        "tenant": "t1",
    }
    return step


@pytest.mark.parametrize(
    ("graph", "shape"),
    [
        ([["a"]], "a"),
        ([["a"], ["b"], ["c"]], ("chain", ["a", "b", "c"])),
        ([["a", "b"]], ("group", ["a", "b"])),
        ([["a", "b"], ["c"]], ("chord", ("group", ["a", "b"]), "c")),
        (
            [["a"], ["b", "c"], ["d"]],
            ("chain", ["a", ("chord", ("group", ["b", "c"]), "d")]),
        ),
        (
            [["a", "b"], ["c"], ["d", "e"], ["f"]],
            (
                "chord",
                ("group", ["a", "b"]),
                ("chain", ["c", ("chord", ("group", ["d", "e"]), "f")]),
            ),
        ),
    ],
)
def test_the_canvas_is_a_chain_of_levels_with_a_chord_for_each_fan_in(
    graph: list[list[str]], shape: Any
) -> None:
    app = Celery("canvas-shape", broker="memory://", backend="cache+memory://")
    canvas = build_canvas(
        graph, lambda s: step_signature(app, "t1", "r1", s, f"task-{s}", f"agent-{s}")
    )
    # Freezing is what sending does first: the recorded task ids must survive it.
    canvas.freeze()
    assert _shape(canvas) == shape
