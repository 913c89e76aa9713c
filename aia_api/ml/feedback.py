"""``/v1/ml/models/{name}/feedback``: true labels for logged predictions, by prediction id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.openapi import SECURED, WITH_BODY, Body, Reply, operation
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.ml.openapi import ML, MODEL_NAME
from aia_api.ml.responses import FeedbackResult
from aia_api.services import services
from aia_workers.errors import NotFoundError
from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.feedback import MAX_FEEDBACK_ITEMS, Feedback, LabelError, record_feedback
from aia_workers.ml.registry import ModelRegistry

__all__ = ["FeedbackItem", "FeedbackRequest", "routes"]


class FeedbackItem(BaseModel):
    """The true label of one logged prediction."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: str = Field(
        min_length=1,
        max_length=36,
        description="An id from an `ml.predict` result's `prediction_ids`.",
    )
    label: Any = Field(
        description="A number for a regression model; for a classifier, a class as the model "
        "predicts them: a whole number where its classes are numbers, else a string."
    )


class FeedbackRequest(BaseModel):
    """True labels for logged predictions of one model, up to 1,000."""

    model_config = ConfigDict(extra="forbid")

    items: list[FeedbackItem] = Field(min_length=1, max_length=MAX_FEEDBACK_ITEMS)


def _label_problem(exc: LabelError) -> Problem:
    errors = [
        {
            "loc": ["body", "items", index, "label"],
            "pointer": f"/body/items/{index}/label",
            "message": message,
            "type": "label",
        }
        for index, message in exc.items
    ]
    return Problem(422, "label-invalid", "Label not usable", str(exc), errors=errors)


@operation(
    id="postFeedback",
    summary="Send the true labels of logged predictions",
    tag=ML,
    permission=Permission.ML_PREDICT,
    responses={200: Reply("Labelled; ids not found are listed.", FeedbackResult)},
    errors=(*SECURED, *WITH_BODY, "404"),
    description=(
        "Needs `ml:predict`. Labels predictions by the ids an `ml.predict` result lists in "
        "`prediction_ids` (null where a row was not sampled into the prediction log, as "
        "AIA_PREDICTION_LOG_SAMPLE_RATE decides; such rows cannot be labelled), so that "
        "performance checks can score the model on live traffic. Labelling again "
        "overwrites. Ids not found for this model (never logged, trimmed from the log, or "
        "another tenant's) come back in `unknown`. A label that does not fit the model is a "
        "422 naming the item, and then nothing is stored. Classification, regression and "
        "text classification models take feedback."
    ),
    parameters=(MODEL_NAME,),
    body=Body("Up to 1,000 labels.", FeedbackRequest),
)
async def post_feedback(request: Request) -> Response:
    principal = require(request, Permission.ML_PREDICT)
    svc = services(request)
    name = request.path_params["name"]
    body = parse_model(FeedbackRequest, await read_json(request, svc.settings.max_body_bytes))
    items = [Feedback(item.prediction_id, item.label) for item in body.items]
    keep = svc.settings.prediction_log_max_rows

    def store() -> dict[str, Any]:
        with svc.sessions.begin() as session:
            experiment = ModelRegistry(session, principal.tenant).experiment_for_model(name)
            if experiment is None:
                raise NotFoundError(f"there is no model {name!r}")
            outcome = record_feedback(
                session,
                principal.tenant,
                name,
                MLTask(experiment.task),
                items,
                keep=keep,
                now=datetime.now(UTC),
            )
        return {"labelled": outcome.labelled, "unknown": outcome.unknown}

    try:
        result = await anyio.to_thread.run_sync(store)
    except LabelError as exc:
        raise _label_problem(exc) from exc
    return json_reply(result)


routes = [
    Route("/v1/ml/models/{name}/feedback", post_feedback, methods=["POST"]),
]
