"""Celery adapters for the ``ml`` task types."""

from __future__ import annotations

from typing import Any

from celery import Task

from aia_workers.catalog import get_task_type
from aia_workers.ml.payloads import PredictPayload, TrainPayload
from aia_workers.ml.prediction import predict as predict_rows
from aia_workers.ml.runtime import runtime
from aia_workers.ml.training import preload_trainers, train_run
from aia_workers.tasking import aia_task, progress_reporter

__all__ = ["predict", "train"]

# Only ml workers import this module. Importing the trainers here, in the
# worker's main process before it forks its pool, spares each pool process
# (and the first run it takes) the seconds torch and statsmodels take to load.
preload_trainers()


@aia_task(get_task_type("ml.train"))
def train(self: Task, payload: dict[str, Any], tenant: str) -> dict[str, Any]:
    return train_run(
        runtime(),
        tenant,
        TrainPayload.model_validate(payload),
        task_id=self.request.id,
        report=progress_reporter(self),
    )


@aia_task(get_task_type("ml.predict"))
def predict(self: Task, payload: dict[str, Any], tenant: str) -> dict[str, Any]:
    return predict_rows(
        runtime(), tenant, PredictPayload.model_validate(payload), task_id=self.request.id
    )
