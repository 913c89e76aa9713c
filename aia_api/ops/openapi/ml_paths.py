"""The document's paths for experiments, runs, the model registry and predictions."""

from __future__ import annotations

from aia_api.ops.openapi.components import (
    _SECURED,
    _WITH_BODY,
    Json,
    _body,
    _json,
    _operation,
    _ref,
)


def _experiment_paths() -> Json:
    return {
        "/v1/ml/experiments": {
            "post": _operation(
                "createExperiment",
                "Create an experiment",
                "ml",
                {"201": _json("ExperimentView", "Created.", Location=_ref("Location", "headers"))},
                errors=(*_SECURED, *_WITH_BODY, "409"),
                description=(
                    "Needs `ml:train`. The target and features are checked against the "
                    "dataset now: a missing column, a non-numeric regression target, a constant "
                    "target or too few rows is a 422 naming the column. Every option must be "
                    "one the task takes and within its bounds, and the time budget at most "
                    "`AIA_ML_MAX_TIME_BUDGET_SECONDS`: otherwise a 422 (`invalid-options`) "
                    "whose `parameter` and `errors` name each offending option and its bound. "
                    "409 when the name is taken."
                ),
                body=_body(_ref("ExperimentRequest"), "What to learn."),
            ),
            "get": _operation(
                "listExperiments",
                "List experiments",
                "ml",
                {"200": _json("ExperimentPage", "Newest first.")},
                errors=(*_SECURED, "400", "422"),
                description="Needs `ml:read`.",
                parameters=["Limit", "Cursor"],
            ),
        },
        "/v1/ml/experiments/{experiment_id}": {
            "get": _operation(
                "getExperiment",
                "An experiment",
                "ml",
                {"200": _json("ExperimentView", "The experiment.")},
                errors=(*_SECURED, "404"),
                description="Needs `ml:read`.",
                parameters=["ExperimentId"],
            )
        },
        "/v1/ml/experiments/{experiment_id}/runs": {
            "post": _operation(
                "startRun",
                "Train the experiment",
                "ml",
                {
                    "202": _json(
                        "RunAccepted",
                        "Queued as an `ml.train` task; its events report each trial.",
                        Location=_ref("Location", "headers"),
                    )
                },
                errors=(*_SECURED, *_WITH_BODY, "404"),
                description=(
                    "Needs `ml:train`. The body is optional. The run's options, laid over the "
                    "experiment's, are checked as at creation (422 `invalid-options`). A run "
                    "trains within the experiment's time budget, its final fit included, and "
                    "within `AIA_ML_TASK_MEMORY_MB` of memory; past either it fails with a "
                    "message saying which. A run that succeeds registers a new version of the "
                    "experiment's model."
                ),
                parameters=["ExperimentId"],
                body={**_body(_ref("RunRequest"), "Seed and per-run options."), "required": False},
            ),
            "get": _operation(
                "listRuns",
                "List an experiment's runs",
                "ml",
                {"200": _json("RunPage", "Newest first.")},
                errors=(*_SECURED, "400", "404", "422"),
                description="Needs `ml:read`.",
                parameters=["ExperimentId", "Limit", "Cursor"],
            ),
        },
        "/v1/ml/experiments/{experiment_id}/runs/{run_id}": {
            "get": _operation(
                "getRun",
                "A run",
                "ml",
                {"200": _json("RunView", "The run.")},
                errors=(*_SECURED, "404"),
                description="Needs `ml:read`.",
                parameters=["ExperimentId", "RunId"],
            )
        },
    }


def _model_paths() -> Json:
    alias_params = ["ModelName", "Alias"]
    return {
        "/v1/ml/models": {
            "get": _operation(
                "listModels",
                "List registered models",
                "ml",
                {"200": _json("ModelPage", "Models with at least one version.")},
                errors=(*_SECURED, "400", "422"),
                description="Needs `ml:read`.",
                parameters=["Limit", "Cursor"],
            )
        },
        "/v1/ml/models/{name}": {
            "get": _operation(
                "getModel",
                "A model: versions, aliases and every alias move",
                "ml",
                {"200": _json("ModelDetail", "The model.")},
                errors=(*_SECURED, "404"),
                description="Needs `ml:read`.",
                parameters=["ModelName"],
            )
        },
        "/v1/ml/models/{name}/versions/{version}": {
            "get": _operation(
                "getModelVersion",
                "A model version with its metrics and leaderboard",
                "ml",
                {"200": _json("VersionView", "The version.")},
                errors=(*_SECURED, "404"),
                description="Needs `ml:read`.",
                parameters=["ModelName", "Version"],
            )
        },
        "/v1/ml/models/{name}/aliases/{alias}": {
            "post": _operation(
                "setAlias",
                "Point an alias at a version",
                "ml",
                {"200": _json("AliasMoved", "Moved; the move is kept in the alias history.")},
                errors=(*_SECURED, *_WITH_BODY, "404"),
                description="Needs `models:manage`.",
                parameters=alias_params,
                body=_body(_ref("AliasRequest"), "The version to point at."),
            ),
            "delete": _operation(
                "deleteAlias",
                "Remove an alias",
                "ml",
                {"204": {"description": "Removed; the removal is kept in the history."}},
                errors=(*_SECURED, "404", "422"),
                description="Needs `models:manage`.",
                parameters=alias_params,
            ),
        },
        "/v1/ml/models/{name}/aliases/{alias}/rollback": {
            "post": _operation(
                "rollbackAlias",
                "Undo an alias's last move",
                "ml",
                {"200": _json("AliasMoved", "The alias points where it did before.")},
                errors=(*_SECURED, "404", "409", "422"),
                description=(
                    "Needs `models:manage`. 409 when the alias pointed nowhere before its "
                    "last move."
                ),
                parameters=alias_params,
            )
        },
        "/v1/ml/models/{name}/predict": {
            "post": _operation(
                "predict",
                "Predict rows",
                "ml",
                {
                    "202": _json(
                        "TaskView",
                        "Queued as an `ml.predict` task; its result holds the predictions.",
                        Location=_ref("Location", "headers"),
                    )
                },
                errors=(*_SECURED, *_WITH_BODY, "404"),
                description=(
                    "Needs `ml:predict`. Uses `version`, else `alias`, else the `production` "
                    "alias, else the latest version. Rows are checked against the version's "
                    "signature: a missing column or a value of the wrong kind is a 422 naming "
                    "the row and column."
                ),
                parameters=["ModelName"],
                body=_body(_ref("PredictRequest"), "The rows, and which version."),
            ),
        },
        "/v1/ml/models/{name}/predictions": {
            "get": _operation(
                "listPredictions",
                "Logged predictions",
                "ml",
                {"200": _json("PredictionPage", "A sample of predictions, newest first.")},
                errors=(*_SECURED, "404", "422"),
                description="Needs `ml:read`.",
                parameters=["ModelName", "Limit"],
            )
        },
    }


def _ml_paths() -> Json:
    return {**_experiment_paths(), **_model_paths()}
