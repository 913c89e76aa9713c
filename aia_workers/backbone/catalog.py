"""The task catalog: every task type AIA runs, where it runs and what it accepts.

The API validates and routes through this module alone, so it must stay light:
it imports payload models, never the modules that hold task bodies (those pull
in torch, scikit-learn or statsmodels and are imported only by workers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydantic import BaseModel

from aia_workers.agents.payloads import AgentRunPayload
from aia_workers.backbone.states import Queue
from aia_workers.diagnostics.payloads import CrashPayload, SleepPayload
from aia_workers.drift.contracts.payloads import DriftCheckPayload
from aia_workers.errors import UnknownTaskTypeError
from aia_workers.ml.contracts.payloads import PredictPayload, RetrainPayload, TrainPayload
from aia_workers.workflows.payloads import WorkflowStepPayload

__all__ = ["CATALOG", "TaskType", "get_task_type", "modules_for_queues"]


@dataclass(frozen=True, slots=True)
class TaskType:
    """One kind of work: its Celery name, queue, payload schema and limits."""

    name: str
    queue: Queue
    payload: type[BaseModel]
    permission: str
    module: str
    time_limit_seconds: int
    description: str
    # A cancel stops a running body by killing its process (revoke with
    # terminate), unless the body stops itself at its next checkpoint.
    stops_at_checkpoints: bool = False

    @property
    def soft_time_limit_seconds(self) -> int:
        # The soft limit leaves the body time to clean up before the hard kill.
        return max(1, self.time_limit_seconds - max(5, self.time_limit_seconds // 20))


_TYPES = (
    TaskType(
        name="diagnostics.sleep",
        queue=Queue.DEFAULT,
        payload=SleepPayload,
        permission="tasks:submit",
        module="aia_workers.diagnostics.tasks",
        time_limit_seconds=660,
        description="Sleeps in steps, reporting progress at each; fails on request.",
    ),
    TaskType(
        name="diagnostics.worker_crash",
        queue=Queue.DEFAULT,
        payload=CrashPayload,
        # It kills the worker process that runs it (in a thread pool, the whole
        # worker and everything else it is running): admins only.
        permission="diagnostics:crash",
        module="aia_workers.diagnostics.tasks",
        time_limit_seconds=60,
        description="Kills the worker process that runs it (exit, segfault or abort), to see "
        "a poison task quarantined as a dead letter. Admins only.",
    ),
    TaskType(
        name="ml.train",
        queue=Queue.ML,
        payload=TrainPayload,
        permission="ml:train",
        module="aia_workers.ml.tasks",
        # The longest time budget (an hour) plus loading, refitting and storing.
        time_limit_seconds=5400,
        description="Trains an experiment (searching within its time budget) and registers "
        "the model version it produces.",
    ),
    TaskType(
        name="ml.predict",
        queue=Queue.ML,
        payload=PredictPayload,
        permission="ml:predict",
        module="aia_workers.ml.tasks",
        time_limit_seconds=300,
        description="Predicts rows with one model version, kept loaded between calls.",
    ),
    TaskType(
        name="ml.retrain",
        queue=Queue.ML,
        payload=RetrainPayload,
        permission="ml:train",
        module="aia_workers.ml.tasks",
        # A training (as ml.train) and two models scored on a holdout.
        time_limit_seconds=5400,
        description="Trains a challenger on the model's current data, scores it and the "
        "champion on one fresh holdout, and moves the alias only if the challenger wins.",
    ),
    TaskType(
        name="drift.check",
        queue=Queue.DRIFT,
        payload=DriftCheckPayload,
        # A drifted report may retrain the model under its drift policy.
        permission="ml:train",
        module="aia_workers.drift.tasks",
        # Loading the model and predicting a large dataset's rows, then the tests.
        time_limit_seconds=900,
        description="Checks a model version's current data (its prediction log over a time "
        "range, or a dataset) for drift from its training data, stores the report, and "
        "retrains under the model's drift policy.",
    ),
    TaskType(
        name="agents.run",
        queue=Queue.AGENTS,
        payload=AgentRunPayload,
        permission="agents:run",
        module="aia_workers.agents.tasks",
        # Generous for a research or analysis run over a large corpus or dataset;
        # a run that never reaches a checkpoint cannot outlive it.
        time_limit_seconds=1800,
        description="Runs an agent (POST /v1/agents/{id}/runs) with an input its type "
        "accepts; its output is the result. A cancel stops it at its next checkpoint.",
        stops_at_checkpoints=True,
    ),
    TaskType(
        name="agents.workflow_step",
        queue=Queue.AGENTS,
        payload=WorkflowStepPayload,
        permission="agents:run",
        module="aia_workers.workflows.tasks",
        # As agents.run: a step is one agent's run.
        time_limit_seconds=1800,
        description="Runs one step of a workflow run (POST /v1/workflows/{id}/runs starts "
        "them, as Celery canvas): the step's agent with its input and the outputs of the "
        "steps it takes them from. A cancel stops it at its next checkpoint.",
        stops_at_checkpoints=True,
    ),
)

CATALOG: Mapping[str, TaskType] = MappingProxyType({t.name: t for t in _TYPES})


def get_task_type(name: str) -> TaskType:
    """The catalog entry for ``name``, or UnknownTaskTypeError naming the known ones."""
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise UnknownTaskTypeError(f"unknown task type {name!r}; known types: {known}") from None


# Modules of AIA's own tasks (not submitted by callers), by the queue they run on.
_INTERNAL_MODULES: Mapping[Queue, tuple[str, ...]] = MappingProxyType(
    {
        Queue.WEBHOOKS: ("aia_workers.webhooks.tasks",),
        # drift.sweep: a drift check of every model with a production alias.
        Queue.DRIFT: ("aia_workers.drift.tasks",),
    }
)


def modules_for_queues(queues: Iterable[str] | None) -> list[str]:
    """Task modules a worker consuming ``queues`` must import (all when None)."""
    wanted = None if queues is None else set(queues)
    modules = {t.module for t in _TYPES if wanted is None or t.queue in wanted}
    for queue, internal in _INTERNAL_MODULES.items():
        if wanted is None or queue in wanted:
            modules.update(internal)
    return sorted(modules)
