"""``/v1/ml/models/{name}/drift``: checks by hand, their reports, and the model's drift policy.

A check is a ``drift.check`` task like any other: submitted here with the
version resolved now (so the report is of the version the caller saw), its
configuration checked against the version's reference so a misnamed feature
is a 422 rather than a failed task.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.listing import Page, stored_page
from aia_api.http.openapi import (
    CURSOR,
    LIMIT,
    SECURED,
    WITH_BODY,
    Body,
    Reply,
    operation,
    path_param,
)
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.ml.drift_responses import (
    DriftPolicyView,
    DriftReportDetail,
    DriftReportPage,
    policy_view,
    report_detail,
    report_summary,
)
from aia_api.ml.openapi import ML, MODEL_NAME
from aia_api.services import services
from aia_api.tasks.responses import TaskView
from aia_workers.db.drift import DriftReference, DriftReport
from aia_workers.db.ml import ModelVersion
from aia_workers.drift.contracts.payloads import DriftCheckOptions, DriftPolicyBody
from aia_workers.drift.policies import PolicyRepository
from aia_workers.drift.reports import ReportRepository
from aia_workers.errors import ConflictError, NotFoundError
from aia_workers.ml.datasets import DatasetRepository
from aia_workers.ml.registry import ModelRegistry

__all__ = ["routes"]

REPORT_ID = path_param("DriftReportId", "report_id", "The drift report's id.")


def _model(registry: ModelRegistry, name: str) -> None:
    if registry.experiment_for_model(name) is None:
        raise NotFoundError(f"there is no model {name!r}")


def _invalid(pointer: list[str | int], message: str, kind: str = "value_error") -> Problem:
    return Problem(
        422,
        "validation-error",
        "Invalid request",
        message,
        errors=[
            {
                "loc": ["body", *pointer],
                "pointer": "/" + "/".join(str(p) for p in pointer),
                "message": message,
                "type": kind,
            }
        ],
    )


def _checkable(session: Session, tenant: str, name: str, body: DriftCheckOptions) -> ModelVersion:
    """The version to check, once its reference and the request agree; else a Problem."""
    registry = ModelRegistry(session, tenant)
    _model(registry, name)
    version = registry.resolve(name, version=body.version, alias=body.alias)
    profile = session.scalar(
        select(DriftReference.profile).where(
            DriftReference.tenant_id == tenant,
            DriftReference.model_version_id == version.id,
        )
    )
    if profile is None:
        raise ConflictError(
            f"version {version.version} of model {name!r} has no drift reference: it was "
            "trained before AIA kept one; train it again to check it for drift"
        )
    features = list(profile.get("features", {}))
    outputs = list(profile.get("predictions", {}))
    for feature in body.config.features:
        if feature not in features and feature not in outputs:
            raise _invalid(
                ["config", "features", feature],
                f"{feature!r} is neither a feature nor an output of version {version.version}; "
                f"its features are {', '.join(features) or 'none'} and its outputs "
                f"{', '.join(outputs) or 'none'}",
                "not_found",
            )
    if body.dataset_id is not None:
        dataset = DatasetRepository(session, tenant).get(body.dataset_id)
        if dataset is None:
            raise _invalid(["dataset_id"], f"there is no dataset {body.dataset_id}", "not_found")
        columns = {c["name"] for c in dataset.columns}
        absent = [f for f in features if f not in columns]
        if absent:
            raise _invalid(
                ["dataset_id"],
                f"dataset {body.dataset_id} has no column {', '.join(map(repr, absent))}, "
                f"which version {version.version} was trained on",
            )
    return version


@operation(
    id="checkDrift",
    summary="Check a model version for drift",
    tag=ML,
    permission=Permission.ML_TRAIN,
    responses={
        202: Reply(
            "Queued as a `drift.check` task; its result links the stored report.",
            TaskView,
            headers=("Location",),
        )
    },
    errors=(*SECURED, *WITH_BODY, "404", "409"),
    description=(
        "Needs `ml:train` (a drifted report may retrain the model under its drift "
        "policy). Checks `version`, else `alias`, else `production`, else the latest, "
        "against its training reference: the rows of `dataset_id`, or its prediction "
        "log between `since` and `until` (default: the whole log kept). Per feature, "
        "Evidently's defaults unless `config` chooses a test or threshold. 409 when "
        "the version has no drift reference (trained before AIA kept them)."
    ),
    parameters=(MODEL_NAME,),
    body=Body("Which version, which window, which tests.", DriftCheckOptions),
)
async def check_drift(request: Request) -> Response:
    principal = require(request, Permission.ML_TRAIN)
    svc = services(request)
    name = request.path_params["name"]
    body = parse_model(DriftCheckOptions, await read_json(request, svc.settings.max_body_bytes))

    def resolve() -> ModelVersion:
        with svc.sessions() as session:
            return _checkable(session, principal.tenant, name, body)

    version = await anyio.to_thread.run_sync(resolve)
    payload = {
        **body.model_dump(mode="json", exclude={"alias", "version"}),
        "model": name,
        "version": version.version,
    }
    submitted = await svc.tasks.submit(principal, {"type": "drift.check", "payload": payload})
    svc.metrics.submitted.labels("drift.check", submitted.view["queue"]).inc()
    view = submitted.view
    return json_reply(view, 202, {"Location": view["links"]["self"]})


@operation(
    id="listDriftReports",
    summary="A model's drift reports",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("Reports, newest first, each with its verdict.", DriftReportPage)},
    errors=(*SECURED, "400", "404", "422"),
    description="Needs `ml:read`.",
    parameters=(MODEL_NAME, LIMIT, CURSOR),
)
async def list_reports(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)
    name = request.path_params["name"]

    def fetch(session: Session, limit: int, cursor: str | None) -> Page[DriftReport]:
        _model(ModelRegistry(session, principal.tenant), name)
        return ReportRepository(session, principal.tenant).page(name, limit=limit, cursor=cursor)

    return await stored_page(request, services(request).sessions, fetch, report_summary)


@operation(
    id="getDriftReport",
    summary="A drift report: every feature's test and outcome",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("The report.", DriftReportDetail)},
    errors=(*SECURED, "404"),
    description="Needs `ml:read`.",
    parameters=(MODEL_NAME, REPORT_ID),
)
async def get_report(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)
    svc = services(request)
    name = request.path_params["name"]
    report_id = request.path_params["report_id"]

    def load() -> dict[str, Any]:
        with svc.sessions() as session:
            report = ReportRepository(session, principal.tenant).get(name, report_id)
            if report is None:
                raise NotFoundError(f"model {name!r} has no drift report {report_id}")
            return report_detail(report)

    return json_reply(await anyio.to_thread.run_sync(load))


@operation(
    id="getDriftPolicy",
    summary="A model's drift policy",
    tag=ML,
    permission=Permission.ML_READ,
    responses={200: Reply("The policy (the default, `never`, if none was set).", DriftPolicyView)},
    errors=(*SECURED, "404"),
    description="Needs `ml:read`.",
    parameters=(MODEL_NAME,),
)
async def get_policy(request: Request) -> Response:
    principal = require(request, Permission.ML_READ)
    svc = services(request)
    name = request.path_params["name"]

    def load() -> dict[str, Any]:
        with svc.sessions() as session:
            _model(ModelRegistry(session, principal.tenant), name)
            return policy_view(name, PolicyRepository(session, principal.tenant).get(name))

    return json_reply(await anyio.to_thread.run_sync(load))


@operation(
    id="setDriftPolicy",
    summary="Set when a drift report retrains the model",
    tag=ML,
    permission=Permission.MODELS_MANAGE,
    responses={200: Reply("The policy now in force.", DriftPolicyView)},
    errors=(*SECURED, *WITH_BODY, "404"),
    description=(
        "Needs `models:manage`. Replaces the whole policy: a report whose dataset drifted "
        "(`dataset_drift`) or whose performance on labelled feedback dropped "
        "(`performance_drop`) submits an `ml.retrain` of the model, whose challenger "
        "takes `alias` only when it scores better by `margin`."
    ),
    parameters=(MODEL_NAME,),
    body=Body("The policy.", DriftPolicyBody),
)
async def set_policy(request: Request) -> Response:
    principal = require(request, Permission.MODELS_MANAGE)
    svc = services(request)
    name = request.path_params["name"]
    body = parse_model(DriftPolicyBody, await read_json(request, svc.settings.max_body_bytes))
    actor = principal.actor

    def store() -> dict[str, Any]:
        with svc.sessions.begin() as session:
            _model(ModelRegistry(session, principal.tenant), name)
            policy = PolicyRepository(session, principal.tenant).put(name, body, actor=actor)
            return policy_view(name, policy)

    return json_reply(await anyio.to_thread.run_sync(store))


routes = [
    Route("/v1/ml/models/{name}/drift", check_drift, methods=["POST"]),
    Route("/v1/ml/models/{name}/drift", list_reports, methods=["GET"]),
    # Before the report route, which would take "policy" for a report id.
    Route("/v1/ml/models/{name}/drift/policy", get_policy, methods=["GET"]),
    Route("/v1/ml/models/{name}/drift/policy", set_policy, methods=["PUT"]),
    Route("/v1/ml/models/{name}/drift/{report_id}", get_report, methods=["GET"]),
]
