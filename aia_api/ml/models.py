"""``/v1/ml/models``: the registry (versions, aliases, rollback) and predictions."""

from __future__ import annotations

import re
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.listing import Page, stored_page
from aia_api.http.openapi import CURSOR, LIMIT, SECURED, WITH_BODY, Body, Reply, operation
from aia_api.http.params import page_limit, parse_count
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.ml.openapi import ALIAS, ML, MODEL_NAME, VERSION
from aia_api.ml.responses import AliasMoved, ModelDetail, ModelPage, PredictionPage, VersionView
from aia_api.ml.views import (
    alias_change_view,
    alias_view,
    model_view,
    prediction_view,
    version_view,
)
from aia_api.services import services
from aia_api.tasks.responses import TaskView
from aia_workers.backbone.announcements import to_webhooks
from aia_workers.db.ml import Experiment, ModelVersion
from aia_workers.errors import NotFoundError
from aia_workers.ml.contracts.payloads import MAX_PREDICT_ROWS
from aia_workers.ml.contracts.signatures import check_rows
from aia_workers.ml.registry import ModelRegistry

__all__ = ["AliasRequest", "PredictRequest", "routes"]

_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_HISTORY_SHOWN = 50


class AliasRequest(BaseModel):
    """Point the alias at ``version``."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    reason: str | None = Field(default=None, max_length=500)


class PredictRequest(BaseModel):
    """Rows to predict, by one version: a number, an alias, or by default ``production``
    (else the latest version)."""

    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_PREDICT_ROWS)
    version: int | None = Field(default=None, ge=1)
    alias: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_selector(self) -> PredictRequest:
        if self.version is not None and self.alias is not None:
            raise ValueError("give a version or an alias, not both")
        return self


def _version_number(request: Request) -> int:
    raw = request.path_params["version"]
    number = parse_count(raw)
    if number is None or number < 1:
        raise Problem(404, "not-found", "Not found", f"{raw!r} is not a version number (1, 2, ...)")
    return number


def _alias_name(request: Request) -> str:
    alias = str(request.path_params["alias"])
    if not _ALIAS.match(alias):
        raise Problem(
            422,
            "validation-error",
            "Invalid request",
            "an alias is a letter then up to 63 letters, digits, '_' or '-'",
        )
    return alias


@operation(
    id="listModels",
    summary="List registered models",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("Models with at least one version.", ModelPage)},
    errors=(*SECURED, "400", "422"),
    description="Needs `ml:read`.",
    parameters=(LIMIT, CURSOR),
)
async def list_models(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)

    def fetch(session: Session, limit: int, cursor: str | None) -> Page[dict[str, Any]]:
        registry = ModelRegistry(session, principal.tenant)
        items, next_cursor = registry.models(limit=limit, cursor=cursor)
        return [
            {
                "name": e.model_name,
                "task": e.task,
                "experiment_id": e.id,
                "latest_version": e.latest_version,
                "aliases": {a.alias: a.version for a in registry.aliases(e.model_name)},
                "links": {"self": f"/v1/ml/models/{e.model_name}"},
            }
            for e in items
        ], next_cursor

    return await stored_page(request, services(request).sessions, fetch)


def _model(registry: ModelRegistry, name: str) -> Experiment:
    experiment = registry.experiment_for_model(name)
    if experiment is None:
        raise NotFoundError(f"there is no model {name!r}")
    return experiment


@operation(
    id="getModel",
    summary="A model: versions, aliases and every alias move",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("The model.", ModelDetail)},
    errors=(*SECURED, "404"),
    description="Needs `ml:read`.",
    parameters=(MODEL_NAME,),
)
async def get_model(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)
    svc = services(request)
    name = request.path_params["name"]

    def load() -> dict[str, Any]:
        with svc.sessions() as session:
            registry = ModelRegistry(session, principal.tenant)
            experiment = _model(registry, name)
            return model_view(
                experiment,
                registry.versions(name),
                registry.aliases(name),
                registry.alias_history(name)[:_HISTORY_SHOWN],
            )

    return json_reply(await anyio.to_thread.run_sync(load))


@operation(
    id="getModelVersion",
    summary="A model version with its metrics and leaderboard",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("The version.", VersionView)},
    errors=(*SECURED, "404"),
    description="Needs `ml:read`.",
    parameters=(MODEL_NAME, VERSION),
)
async def get_version(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)
    svc = services(request)
    name = request.path_params["name"]
    number = _version_number(request)

    def load() -> dict[str, Any]:
        with svc.sessions() as session:
            registry = ModelRegistry(session, principal.tenant)
            version = registry.version(name, number)
            if version is None:
                _model(registry, name)
                raise NotFoundError(f"model {name!r} has no version {number}")
            pointing = [a.alias for a in registry.aliases(name) if a.version == number]
            return version_view(version, pointing)

    return json_reply(await anyio.to_thread.run_sync(load))


@operation(
    id="setAlias",
    summary="Point an alias at a version",
    tag=ML,
    permission=Permission.MODELS_MANAGE,
    responses={200: Reply("Moved; the move is kept in the alias history.", AliasMoved)},
    errors=(*SECURED, *WITH_BODY, "404"),
    description="Needs `models:manage`.",
    parameters=(MODEL_NAME, ALIAS),
    body=Body("The version to point at.", AliasRequest),
)
async def set_alias(request: Request) -> Response:
    principal = require(request, Permission.MODELS_MANAGE)
    svc = services(request)
    name = request.path_params["name"]
    alias = _alias_name(request)
    body = parse_model(AliasRequest, await read_json(request, svc.settings.max_body_bytes))
    actor = principal.actor

    def move() -> dict[str, Any]:
        with svc.sessions.begin() as session:
            registry = ModelRegistry(session, principal.tenant, to_webhooks)
            _model(registry, name)
            change = registry.move_alias(name, alias, body.version, actor=actor, reason=body.reason)
            return {**_pointer(registry, name, alias), "change": alias_change_view(change)}

    return json_reply(await anyio.to_thread.run_sync(move))


def _pointer(registry: ModelRegistry, name: str, alias: str) -> dict[str, Any]:
    pointer = registry.alias(name, alias)
    if pointer is None:
        raise NotFoundError(f"model {name!r} has no alias {alias!r}")
    return alias_view(pointer)


@operation(
    id="rollbackAlias",
    summary="Undo an alias's last move",
    tag=ML,
    permission=Permission.MODELS_MANAGE,
    responses={200: Reply("The alias points where it did before.", AliasMoved)},
    errors=(*SECURED, "404", "409", "422"),
    description="Needs `models:manage`. 409 when the alias pointed nowhere before its last move.",
    parameters=(MODEL_NAME, ALIAS),
)
async def rollback_alias(request: Request) -> Response:
    principal = require(request, Permission.MODELS_MANAGE)
    svc = services(request)
    name = request.path_params["name"]
    alias = _alias_name(request)
    actor = principal.actor

    def undo() -> dict[str, Any]:
        with svc.sessions.begin() as session:
            registry = ModelRegistry(session, principal.tenant, to_webhooks)
            _model(registry, name)
            change = registry.rollback_alias(name, alias, actor=actor)
            return {**_pointer(registry, name, alias), "change": alias_change_view(change)}

    return json_reply(await anyio.to_thread.run_sync(undo))


@operation(
    id="deleteAlias",
    summary="Remove an alias",
    tag=ML,
    permission=Permission.MODELS_MANAGE,
    responses={204: Reply("Removed; the removal is kept in the history.")},
    errors=(*SECURED, "404", "422"),
    description="Needs `models:manage`.",
    parameters=(MODEL_NAME, ALIAS),
)
async def delete_alias(request: Request) -> Response:
    principal = require(request, Permission.MODELS_MANAGE)
    svc = services(request)
    name = request.path_params["name"]
    alias = _alias_name(request)
    actor = principal.actor

    def remove() -> None:
        with svc.sessions.begin() as session:
            registry = ModelRegistry(session, principal.tenant, to_webhooks)
            _model(registry, name)
            registry.move_alias(name, alias, None, actor=actor)

    await anyio.to_thread.run_sync(remove)
    return Response(status_code=204)


@operation(
    id="predict",
    summary="Predict rows",
    tag=ML,
    permission=Permission.ML_PREDICT,
    responses={
        202: Reply(
            "Queued as an `ml.predict` task; its result holds the predictions and, "
            "parallel to them, `prediction_ids`.",
            TaskView,
            headers=("Location",),
        )
    },
    errors=(*SECURED, *WITH_BODY, "404"),
    description=(
        "Needs `ml:predict`. Uses `version`, else `alias`, else the `production` "
        "alias, else the latest version. Rows are checked against the version's "
        "signature: a missing column or a value of the wrong kind is a 422 naming "
        "the row and column. The task's result has `model`, `version`, `predictions`, "
        "`model_cache` and `prediction_ids`: one per prediction, the id to send its true "
        "label to `POST /v1/ml/models/{name}/feedback` with, or null where the row was not "
        "logged: only a sample of rows is (AIA_PREDICTION_LOG_SAMPLE_RATE)."
    ),
    parameters=(MODEL_NAME,),
    body=Body("The rows, and which version.", PredictRequest),
)
async def predict(request: Request) -> Response:
    principal = require(request, Permission.ML_PREDICT)
    svc = services(request)
    name = request.path_params["name"]
    body = parse_model(PredictRequest, await read_json(request, svc.settings.max_body_bytes))

    def resolve() -> ModelVersion:
        with svc.sessions() as session:
            registry = ModelRegistry(session, principal.tenant)
            _model(registry, name)
            version = registry.resolve(name, version=body.version, alias=body.alias)
        # Checked here so a row the model cannot take is a 422 now, not a failed task later.
        check_rows(version.signature, body.rows)
        return version

    version = await anyio.to_thread.run_sync(resolve)
    payload = {"model": name, "version": version.version, "rows": body.rows}
    submitted = await svc.tasks.submit(principal, {"type": "ml.predict", "payload": payload})
    svc.metrics.submitted.labels("ml.predict", submitted.view["queue"]).inc()
    view = submitted.view
    return json_reply(view, 202, {"Location": view["links"]["self"]})


@operation(
    id="listPredictions",
    summary="Logged predictions",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("A sample of predictions, newest first.", PredictionPage)},
    errors=(*SECURED, "404", "422"),
    description="Needs `ml:read`.",
    parameters=(MODEL_NAME, LIMIT),
)
async def list_predictions(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)
    svc = services(request)
    name = request.path_params["name"]
    limit = page_limit(request.query_params)

    def load() -> list[dict[str, Any]]:
        with svc.sessions() as session:
            registry = ModelRegistry(session, principal.tenant)
            _model(registry, name)
            return [prediction_view(p) for p in registry.predictions(name, limit=limit)]

    return json_reply({"items": await anyio.to_thread.run_sync(load)})


routes = [
    Route("/v1/ml/models", list_models, methods=["GET"]),
    Route("/v1/ml/models/{name}", get_model, methods=["GET"]),
    Route("/v1/ml/models/{name}/versions/{version}", get_version, methods=["GET"]),
    Route("/v1/ml/models/{name}/aliases/{alias}", set_alias, methods=["POST"]),
    Route("/v1/ml/models/{name}/aliases/{alias}", delete_alias, methods=["DELETE"]),
    Route("/v1/ml/models/{name}/aliases/{alias}/rollback", rollback_alias, methods=["POST"]),
    Route("/v1/ml/models/{name}/predict", predict, methods=["POST"]),
    Route("/v1/ml/models/{name}/predictions", list_predictions, methods=["GET"]),
]
