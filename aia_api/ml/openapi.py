"""What the ML operations share in the OpenAPI document: their tag and path parameters."""

from __future__ import annotations

from aia_api.http.openapi import Param, Tag, path_param

__all__ = ["ALIAS", "DATASET_ID", "EXPERIMENT_ID", "ML", "MODEL_NAME", "RUN_ID", "VERSION"]

ML = Tag("ml", "Datasets, experiments, training runs, the model registry, predictions.")

DATASET_ID = path_param("DatasetId", "dataset_id", "The dataset's id.")
EXPERIMENT_ID = path_param("ExperimentId", "experiment_id", "The experiment's id.")
RUN_ID = path_param("RunId", "run_id", "The run's id.")
MODEL_NAME = path_param("ModelName", "name", "The model's name (its experiment's name).")
ALIAS = path_param("Alias", "alias", "An alias: `production`, `staging`, or any name.")
# An integer, unlike the other path segments: the handler answers 404 for anything else.
VERSION = Param(
    "Version",
    {
        "name": "version",
        "in": "path",
        "required": True,
        "description": "A version number: 1, 2, ...",
        "schema": {"type": "integer", "minimum": 1},
    },
)
