"""The fitted model a tabular search returns: a pipeline that serves JSON-safe predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from aia_workers.ml.contracts.tables import DatasetError
from aia_workers.ml.trainers.automl.ensemble import AveragedModel
from aia_workers.ml.trainers.fitted import json_safe
from aia_workers.ml.trainers.tabular import TabularTask

__all__ = ["TabularPredictor"]


class TabularPredictor:
    """A fitted tabular pipeline (or an average of several) and its input columns.

    Serves JSON-safe predictions.
    """

    def __init__(
        self, pipeline: Pipeline | AveragedModel, task: TabularTask, features: list[str]
    ) -> None:
        self.pipeline = pipeline
        self.task = TabularTask(task)
        self.features = list(features)
        classification = self.task == TabularTask.CLASSIFICATION
        self.classes: list[Any] = json_safe(pipeline.classes_) if classification else []

    def predict_rows(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Per row ``{"prediction": value}``; classification adds ``{"probabilities": {label: p}}``.

        Probabilities are in [0, 1] and the prediction is the most probable label.
        """
        for column in self.features:
            if column not in frame.columns:
                raise DatasetError(f"there is no column {column!r}", column=column)
        if frame.empty:
            return []
        x = frame[self.features]
        if self.task == TabularTask.REGRESSION:
            return [{"prediction": json_safe(float(v))} for v in self.pipeline.predict(x)]
        keys = [str(c) for c in self.classes]
        return [
            {
                "prediction": self.classes[int(np.argmax(row))],
                "probabilities": {k: float(p) for k, p in zip(keys, row, strict=True)},
            }
            for row in self.pipeline.predict_proba(x)
        ]
