"""``/v1/ml/models/{name}/retrain``: champion against challenger, on the ``ml`` queue."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.openapi import SECURED, WITH_BODY, Body, Reply, operation
from aia_api.http.replies import json_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.ml.datasets import no_dataset_field
from aia_api.ml.openapi import ML, MODEL_NAME
from aia_api.services import services
from aia_api.tasks.responses import TaskView
from aia_workers.errors import NotFoundError
from aia_workers.ml.contracts.payloads import MLTask, RetrainOptions
from aia_workers.ml.contracts.retraining import (
    check_current_data,
    check_retrainable,
    retrain_metric,
)
from aia_workers.ml.datasets import DatasetRepository
from aia_workers.ml.registry import ModelRegistry

__all__ = ["RetrainRequest", "routes"]


class RetrainRequest(RetrainOptions):
    """A retrain by hand: which alias, by what margin, on which data."""


@operation(
    id="retrainModel",
    summary="Retrain a model: a challenger against the champion",
    tag=ML,
    permission=Permission.ML_TRAIN,
    responses={
        202: Reply(
            "Queued as an `ml.retrain` task; its result holds the decision and both scores.",
            TaskView,
            headers=("Location",),
        )
    },
    errors=(*SECURED, *WITH_BODY, "404"),
    description=(
        "Needs `ml:train`. The body is optional. Holds back a seeded holdout "
        "(`holdout_fraction`, stratified for classifiers) of the current data (the "
        "experiment's dataset, or `dataset_id`), trains a challenger with the "
        "experiment's settings on the rest (a new version, as a run would), and "
        "scores it and the champion (the version `alias` points at) on the holdout "
        "with the experiment's metric. The alias moves to the challenger only when "
        "it is strictly better by at least `margin` (in the metric's units; for mae "
        "and rmse, lower), or when the alias pointed nowhere. Either way the "
        "decision and both scores are added to the model's alias history; only a "
        "move sends `model.alias_changed`. 422 for a model kind with no holdout "
        "score (forecasting, sentiment, anomaly detection) or data lacking the "
        "model's columns."
    ),
    parameters=(MODEL_NAME,),
    body=Body("The alias, margin, holdout and data.", RetrainRequest, required=False),
)
async def retrain(request: Request) -> Response:
    principal = require(request, Permission.ML_TRAIN)
    svc = services(request)
    name = request.path_params["name"]
    # Every field has a default, so an empty body retrains as the defaults say.
    headers = request.headers
    empty = headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers
    raw = {} if empty else await read_json(request, svc.settings.max_body_bytes)
    body = parse_model(RetrainRequest, raw)

    def check() -> None:
        # As the worker will check it, so a retrain that cannot run is a 422 now.
        with svc.sessions() as session:
            registry = ModelRegistry(session, principal.tenant)
            experiment = registry.experiment_for_model(name)
            if experiment is None:
                raise NotFoundError(f"there is no model {name!r}")
            task = MLTask(experiment.task)
            check_retrainable(task)
            retrain_metric(task, experiment.metric)
            dataset_id = body.dataset_id or experiment.dataset_id
            dataset = DatasetRepository(session, principal.tenant).get(dataset_id)
            if dataset is None:
                raise no_dataset_field(dataset_id)
            pointer = registry.alias(name, body.alias)
            champion = registry.version(name, pointer.version) if pointer else None
            check_current_data(
                name,
                dataset_id,
                dataset.columns,
                experiment.target,
                experiment.features or [],
                champion.signature if champion else None,
            )

    await anyio.to_thread.run_sync(check)
    payload = {"model": name, "trigger": "manual", **body.model_dump()}
    submitted = await svc.tasks.submit(principal, {"type": "ml.retrain", "payload": payload})
    svc.metrics.submitted.labels("ml.retrain", submitted.view["queue"]).inc()
    view = submitted.view
    return json_reply(view, 202, {"Location": view["links"]["self"]})


routes = [Route("/v1/ml/models/{name}/retrain", retrain, methods=["POST"])]
