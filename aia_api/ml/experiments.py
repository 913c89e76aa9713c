"""``/v1/ml/experiments``: what to learn, and runs that train it on the ``ml`` queue."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import sqlalchemy.exc
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.listing import Page, stored_page
from aia_api.http.openapi import CURSOR, LIMIT, SECURED, WITH_BODY, Body, Reply, operation
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.ml.datasets import no_dataset_field
from aia_api.ml.openapi import EXPERIMENT_ID, ML, RUN_ID
from aia_api.ml.responses import ExperimentPage, ExperimentView, RunAccepted, RunPage, RunView
from aia_api.ml.views import experiment_view, run_view
from aia_api.services import Services, services
from aia_workers.backbone.states import Status
from aia_workers.db.ml import Experiment, TrainingRun
from aia_workers.errors import ConflictError, NotFoundError
from aia_workers.ml.contracts.options import OptionLimits, OptionsError, check_budget, check_options
from aia_workers.ml.contracts.payloads import METRICS, MLTask
from aia_workers.ml.contracts.signatures import check_experiment
from aia_workers.ml.datasets import DatasetRepository
from aia_workers.ml.registry import ModelRegistry, RunStatus
from aia_workers.settings import Settings

__all__ = ["ExperimentRequest", "ExperimentUpdate", "RunRequest", "routes"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"


class ExperimentRequest(BaseModel):
    """An experiment: learn ``target`` from ``features`` of a dataset, for one kind of task."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=_NAME,
        description="Also the name its model versions are registered under; unique per tenant.",
    )
    task: MLTask
    dataset_id: str = Field(min_length=1, max_length=36)
    target: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The column to predict (optional for sentiment and anomaly detection, "
        "where it holds known labels to score against).",
    )
    features: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="Input columns; by default every column the task can use but the target.",
    )
    time_budget_seconds: float = Field(
        default=60,
        gt=0,
        description="Wall-clock seconds a run may train, the final fit included; at most "
        "AIA_ML_MAX_TIME_BUDGET_SECONDS (3600 by default).",
    )
    metric: str | None = Field(default=None, description="What the search optimises.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Per-task knobs, each bounded; an unknown name is refused. Classification "
        "and regression: estimator, estimators, max_trials, and params (one estimator's "
        "parameters); forecasting: horizon, season_length, backtest_folds, estimator; "
        "text_classification: estimator; sentiment: positive_threshold, negative_threshold; "
        "anomaly_detection: contamination, estimator.",
    )

    @model_validator(mode="after")
    def _metric_fits_task(self) -> ExperimentRequest:
        allowed = METRICS[self.task]
        if self.metric is not None and self.metric not in allowed:
            names = ", ".join(allowed) or "none (this task has no metric to choose)"
            raise ValueError(f"metric {self.metric!r} does not apply to {self.task}; use {names}")
        return self


class ExperimentUpdate(BaseModel):
    """What later runs and retrains of the experiment use; what it learns stays as created."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=36,
        description="The experiment's current data: a dataset with its target and feature "
        "columns, which later runs and `ml.retrain` train on.",
    )
    time_budget_seconds: float | None = Field(
        default=None, gt=0, description="As at creation; at most AIA_ML_MAX_TIME_BUDGET_SECONDS."
    )


class RunRequest(BaseModel):
    """One training of the experiment."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    dataset_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=36,
        description="Train on another dataset with the same columns (a retrain on new data).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides the experiment's options for this run; checked as they are.",
    )


@operation(
    id="createExperiment",
    summary="Create an experiment",
    tag=ML,
    permission=Permission.ML_TRAIN,
    responses={201: Reply("Created.", ExperimentView, headers=("Location",))},
    errors=(*SECURED, *WITH_BODY, "409"),
    description=(
        "Needs `ml:train`. The target and features are checked against the "
        "dataset now: a missing column, a non-numeric regression target, a constant "
        "target or too few rows is a 422 naming the column. Every option must be "
        "one the task takes and within its bounds, and the time budget at most "
        "`AIA_ML_MAX_TIME_BUDGET_SECONDS`: otherwise a 422 (`invalid-options`) "
        "whose `parameter` and `errors` name each offending option and its bound. "
        "409 when the name is taken."
    ),
    body=Body("What to learn.", ExperimentRequest),
)
async def create_experiment(request: Request) -> Response:
    principal = require(request, Permission.ML_TRAIN)
    svc = services(request)
    body = parse_model(ExperimentRequest, await read_json(request, svc.settings.max_body_bytes))
    with _options_problem():
        check_budget(body.time_budget_seconds, svc.settings.ml_max_time_budget_seconds)
        check_options(body.task, body.options, OptionLimits.from_settings(svc.settings))
    actor = principal.actor

    def store() -> Experiment:
        with svc.sessions.begin() as session:
            dataset = DatasetRepository(session, principal.tenant).get(body.dataset_id)
            if dataset is None:
                raise no_dataset_field(body.dataset_id)
            check_experiment(body.task, dataset.columns, dataset.rows, body.target, body.features)
            experiment = Experiment(
                id=str(uuid.uuid4()),
                tenant_id=principal.tenant,
                name=body.name,
                model_name=body.name,
                task=body.task.value,
                dataset_id=body.dataset_id,
                target=body.target,
                features=body.features or [],
                time_budget_seconds=body.time_budget_seconds,
                metric=body.metric,
                options=body.options,
                latest_version=0,
                created_by=actor,
                created_at=datetime.now(UTC),
            )
            ModelRegistry(session, principal.tenant).add_experiment(experiment)
        return experiment

    try:
        experiment = await anyio.to_thread.run_sync(store)
    except sqlalchemy.exc.IntegrityError:
        # Two requests raced for the same name; the unique index chose one.
        raise ConflictError(f"there is already a model named {body.name!r}") from None
    view = experiment_view(experiment)
    return json_reply(view, 201, {"Location": view["links"]["self"]})


async def _experiment(svc: Services, tenant: str, experiment_id: str) -> Experiment:
    def load() -> Experiment | None:
        with svc.sessions() as session:
            return ModelRegistry(session, tenant).experiment(experiment_id)

    experiment = await anyio.to_thread.run_sync(load)
    if experiment is None:
        raise NotFoundError(f"there is no experiment {experiment_id}")
    return experiment


@operation(
    id="getExperiment",
    summary="An experiment",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("The experiment.", ExperimentView)},
    errors=(*SECURED, "404"),
    description="Needs `ml:read`.",
    parameters=(EXPERIMENT_ID,),
)
async def get_experiment(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)
    experiment = await _experiment(
        services(request), principal.tenant, request.path_params["experiment_id"]
    )
    return json_reply(experiment_view(experiment))


@operation(
    id="updateExperiment",
    summary="Change an experiment's data or budget",
    tag=ML,
    permission=Permission.ML_TRAIN,
    responses={200: Reply("The experiment as changed.", ExperimentView)},
    errors=(*SECURED, *WITH_BODY, "404"),
    description=(
        "Needs `ml:train`. A new `dataset_id` is checked as at creation: it must hold the "
        "experiment's target and features (422 naming the column). Versions already "
        "registered keep the data they were trained on."
    ),
    parameters=(EXPERIMENT_ID,),
    body=Body("The fields to change.", ExperimentUpdate),
)
async def update_experiment(request: Request) -> Response:
    principal = require(request, Permission.ML_TRAIN)
    svc = services(request)
    body = parse_model(ExperimentUpdate, await read_json(request, svc.settings.max_body_bytes))
    if body.time_budget_seconds is not None:
        with _options_problem():
            check_budget(body.time_budget_seconds, svc.settings.ml_max_time_budget_seconds)
    experiment_id = request.path_params["experiment_id"]

    def store() -> Experiment:
        with svc.sessions.begin() as session:
            registry = ModelRegistry(session, principal.tenant)
            experiment = registry.experiment(experiment_id)
            if experiment is None:
                raise NotFoundError(f"there is no experiment {experiment_id}")
            if body.dataset_id is not None:
                dataset = DatasetRepository(session, principal.tenant).get(body.dataset_id)
                if dataset is None:
                    raise no_dataset_field(body.dataset_id)
                check_experiment(
                    MLTask(experiment.task),
                    dataset.columns,
                    dataset.rows,
                    experiment.target,
                    experiment.features,
                )
            changes = body.model_dump(exclude_none=True)
            registry.update_experiment(experiment_id, **changes)
            for field, value in changes.items():
                setattr(experiment, field, value)
            return experiment

    return json_reply(experiment_view(await anyio.to_thread.run_sync(store)))


@operation(
    id="listExperiments",
    summary="List experiments",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("Newest first.", ExperimentPage)},
    errors=(*SECURED, "400", "422"),
    description="Needs `ml:read`.",
    parameters=(LIMIT, CURSOR),
)
async def list_experiments(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)

    def fetch(session: Session, limit: int, cursor: str | None) -> Page[Experiment]:
        return ModelRegistry(session, principal.tenant).experiments(limit=limit, cursor=cursor)

    return await stored_page(request, services(request).sessions, fetch, experiment_view)


@operation(
    id="startRun",
    summary="Train the experiment",
    tag=ML,
    permission=Permission.ML_TRAIN,
    responses={
        202: Reply(
            "Queued as an `ml.train` task; its events report each trial.",
            RunAccepted,
            headers=("Location",),
        )
    },
    errors=(*SECURED, *WITH_BODY, "404"),
    description=(
        "Needs `ml:train`. The body is optional. The run's options, laid over the "
        "experiment's, are checked as at creation (422 `invalid-options`). A run "
        "trains within the experiment's time budget, its final fit included, and "
        "within `AIA_ML_TASK_MEMORY_MB` of memory; past either it fails with a "
        "message saying which. A run that succeeds registers a new version of the "
        "experiment's model."
    ),
    parameters=(EXPERIMENT_ID,),
    body=Body("Seed and per-run options.", RunRequest, required=False),
)
async def start_run(request: Request) -> Response:
    principal = require(request, Permission.ML_TRAIN)
    svc = services(request)
    # Every field has a default, so an empty body starts a run as the experiment says.
    headers = request.headers
    empty = headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers
    raw = {} if empty else await read_json(request, svc.settings.max_body_bytes)
    body = parse_model(RunRequest, raw)
    experiment = await _experiment(svc, principal.tenant, request.path_params["experiment_id"])
    _check_run(experiment, body, svc.settings)
    options = dict(body.options)
    if body.dataset_id is not None:
        options["dataset_id"] = body.dataset_id
    run = TrainingRun(
        id=str(uuid.uuid4()),
        tenant_id=principal.tenant,
        experiment_id=experiment.id,
        task_id=None,
        status=RunStatus.QUEUED,
        options=options,
        created_by=principal.actor,
        created_at=datetime.now(UTC),
    )

    def check_and_add() -> None:
        with svc.sessions.begin() as session:
            if body.dataset_id is not None:
                dataset = DatasetRepository(session, principal.tenant).get(body.dataset_id)
                if dataset is None:
                    raise NotFoundError(f"there is no dataset {body.dataset_id}")
                check_experiment(
                    MLTask(experiment.task),
                    dataset.columns,
                    dataset.rows,
                    experiment.target,
                    experiment.features,
                )
            ModelRegistry(session, principal.tenant).add_run(run)

    await anyio.to_thread.run_sync(check_and_add)
    payload = {
        "experiment_id": experiment.id,
        "run_id": run.id,
        "seed": body.seed,
        "options": options,
    }
    try:
        submitted = await svc.tasks.submit(principal, {"type": "ml.train", "payload": payload})
    except BaseException:
        await anyio.to_thread.run_sync(_forget_run, svc, principal.tenant, run.id)
        raise
    run.task_id = submitted.view["id"]
    await anyio.to_thread.run_sync(_set_task, svc, principal.tenant, run.id, run.task_id)
    svc.metrics.submitted.labels("ml.train", submitted.view["queue"]).inc()
    view = run_view(run, experiment.model_name)
    view["task"] = submitted.view
    return json_reply(view, 202, {"Location": view["links"]["self"]})


@contextmanager
def _options_problem() -> Iterator[None]:
    """OptionsError as a 422 naming the parameter and its bound."""
    try:
        yield
    except OptionsError as exc:
        raise Problem(
            422,
            "invalid-options",
            "Training options out of bounds",
            str(exc),
            errors=exc.errors,
            parameter=exc.parameter,
        ) from None


def _check_run(experiment: Experiment, body: RunRequest, settings: Settings) -> None:
    """The run's options over the experiment's, and its budget, as the worker will check them."""
    with _options_problem():
        check_budget(experiment.time_budget_seconds, settings.ml_max_time_budget_seconds)
        check_options(
            MLTask(experiment.task),
            {**experiment.options, **body.options},
            OptionLimits.from_settings(settings),
        )


def _forget_run(svc: Services, tenant: str, run_id: str) -> None:
    with svc.sessions.begin() as session:
        ModelRegistry(session, tenant).update_run(
            run_id,
            status=RunStatus.FAILED,
            error="the training task could not be queued",
            finished_at=datetime.now(UTC),
        )


def _set_task(svc: Services, tenant: str, run_id: str, task_id: str) -> None:
    with svc.sessions.begin() as session:
        registry = ModelRegistry(session, tenant)
        run = registry.run(run_id)
        # The worker may have started it (and set the id) already.
        if run is not None and run.task_id is None:
            registry.update_run(run_id, task_id=task_id)


@operation(
    id="getRun",
    summary="A run",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("The run.", RunView)},
    errors=(*SECURED, "404"),
    description="Needs `ml:read`.",
    parameters=(EXPERIMENT_ID, RUN_ID),
)
async def get_run(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)
    svc = services(request)
    experiment = await _experiment(svc, principal.tenant, request.path_params["experiment_id"])
    run_id = request.path_params["run_id"]

    def load() -> TrainingRun | None:
        with svc.sessions() as session:
            return ModelRegistry(session, principal.tenant).run(run_id)

    run = await anyio.to_thread.run_sync(load)
    if run is None or run.experiment_id != experiment.id:
        raise NotFoundError(f"experiment {experiment.id} has no run {run_id}")
    view = run_view(run, experiment.model_name)
    if run.status != RunStatus.SUCCEEDED and run.task_id:
        # A task cancelled before it started never reports back to its run, and
        # one stopped while running reports only that it was killed; the task's
        # own record says how it ended.
        task = await svc.tasks.get(principal.tenant, run.task_id)
        if task is not None and task["status"] == Status.CANCELLED:
            view["status"] = Status.CANCELLED.value
        elif task is not None and task["status"] == Status.FAILED and not run.error:
            view["status"] = Status.FAILED.value
            view["error"] = (task.get("error") or {}).get("message")
    return json_reply(view)


@operation(
    id="listRuns",
    summary="List an experiment's runs",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("Newest first.", RunPage)},
    errors=(*SECURED, "400", "404", "422"),
    description="Needs `ml:read`.",
    parameters=(EXPERIMENT_ID, LIMIT, CURSOR),
)
async def list_runs(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)
    svc = services(request)
    experiment = await _experiment(svc, principal.tenant, request.path_params["experiment_id"])

    def fetch(session: Session, limit: int, cursor: str | None) -> Page[TrainingRun]:
        registry = ModelRegistry(session, principal.tenant)
        return registry.runs(experiment.id, limit=limit, cursor=cursor)

    return await stored_page(
        request, svc.sessions, fetch, lambda r: run_view(r, experiment.model_name)
    )


routes = [
    Route("/v1/ml/experiments", create_experiment, methods=["POST"]),
    Route("/v1/ml/experiments", list_experiments, methods=["GET"]),
    Route("/v1/ml/experiments/{experiment_id}", get_experiment, methods=["GET"]),
    Route("/v1/ml/experiments/{experiment_id}", update_experiment, methods=["PATCH"]),
    Route("/v1/ml/experiments/{experiment_id}/runs", start_run, methods=["POST"]),
    Route("/v1/ml/experiments/{experiment_id}/runs", list_runs, methods=["GET"]),
    Route("/v1/ml/experiments/{experiment_id}/runs/{run_id}", get_run, methods=["GET"]),
]
