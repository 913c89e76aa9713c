"""A workflow run's steps as Celery canvas: chain for a sequence, group for steps
that run side by side, chord for a fan-in.

The Celery side of workflows, like a ``tasks.py``: the domain gives the levels
of the graph (``graph.levels``), this module the canvas that runs them. Level
after level: one step is a task, several are a group, and a group followed by
more work is a chord, whose body starts once every step of the group has
succeeded; so research and analysis side by side, then content, is
``chord([research, analysis], content)``. A step waits for its whole level
before it, not just for the steps it names: simpler canvas, same outputs.

Every signature is immutable: a step reads its upstream outputs from the
run's rows, not from the results Celery would pass along, so a resumed run
(whose finished steps are not in the canvas) feeds its steps the same way.
Each step's task id is fixed beforehand: the task was recorded under it.

A step is an agent run, under its agent's concurrency limit like any other
(``aia_workers.agents.concurrency``): its message names the agent, and a step
whose agent has no free slot waits parked, its message acknowledged, until
it is handed one and sent again with the canvas context it came with (its
chain, its chord, its place in its group), so that the canvas goes on from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from celery import Celery, chain, chord, group
from celery.canvas import Signature

from aia_workers.backbone.catalog import get_task_type
from aia_workers.workflows.records import STEP_TYPE, step_kwargs

__all__ = ["build_canvas", "step_signature"]


def step_signature(
    app: Celery, tenant: str, run_id: str, step_id: str, task_id: str, agent_id: str
) -> Signature:
    """The immutable signature of one step's task, under its recorded ``task_id``;
    ``agent_id`` is the step's agent, whose slot the step takes."""
    queue = get_task_type(STEP_TYPE).queue.value
    return Signature(
        STEP_TYPE,
        kwargs=step_kwargs(tenant, run_id, step_id, agent_id),
        options={"task_id": task_id, "queue": queue},
        immutable=True,
        app=app,
    )


def build_canvas(
    levels: Sequence[Sequence[str]], signature_of: Callable[[str], Signature]
) -> Signature:
    """The canvas that runs ``levels`` (lists of step ids) one after the other."""
    if not levels or not all(levels):
        raise ValueError("a canvas needs at least one step in every level")
    first = [signature_of(step) for step in levels[0]]
    if len(levels) == 1:
        return first[0] if len(first) == 1 else group(first)
    rest = build_canvas(levels[1:], signature_of)
    if len(first) == 1:
        return chain(first[0], rest)
    return chord(group(first), rest)
