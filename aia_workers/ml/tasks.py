"""Celery adapters for the ``ml`` task types."""

from __future__ import annotations

from typing import Any

from celery import Task, signals

from aia_workers.backbone.announcements import to_webhooks
from aia_workers.backbone.catalog import get_task_type
from aia_workers.backbone.tasking import aia_task, progress_reporter
from aia_workers.db.session import database_outage_is_transient
from aia_workers.ml.contracts.payloads import PredictPayload, RetrainPayload, TrainPayload
from aia_workers.ml.memory import cap_memory
from aia_workers.ml.prediction import predict as predict_rows
from aia_workers.ml.retraining import retrain as retrain_model
from aia_workers.ml.runtime import runtime
from aia_workers.ml.training import preload_trainers, train_run
from aia_workers.settings import get_settings

__all__ = ["predict", "retrain", "train"]

# Only ml workers import this module. Importing the trainers here, in the
# worker's main process before it forks its pool, spares each pool process
# (and the first run it takes) the seconds torch and statsmodels take to load.
preload_trainers()


@signals.worker_process_init.connect
def _cap_pool_process(**_: Any) -> None:
    # Predictions allocate in the pool process itself; each training in a child
    # of it, capped again there (aia_workers.ml.isolation).
    cap_memory(get_settings().ml_task_memory_mb)


@aia_task(get_task_type("ml.train"))
def train(self: Task, payload: dict[str, Any], tenant: str) -> dict[str, Any]:
    with database_outage_is_transient():
        return train_run(
            runtime(),
            tenant,
            TrainPayload.model_validate(payload),
            task_id=self.request.id,
            events=to_webhooks,
            report=progress_reporter(self),
        )


@aia_task(get_task_type("ml.predict"))
def predict(self: Task, payload: dict[str, Any], tenant: str) -> dict[str, Any]:
    with database_outage_is_transient():
        return predict_rows(
            runtime(), tenant, PredictPayload.model_validate(payload), task_id=self.request.id
        )


@aia_task(get_task_type("ml.retrain"))
def retrain(self: Task, payload: dict[str, Any], tenant: str) -> dict[str, Any]:
    with database_outage_is_transient():
        return retrain_model(
            runtime(),
            tenant,
            RetrainPayload.model_validate(payload),
            task_id=self.request.id,
            events=to_webhooks,
            report=progress_reporter(self),
        )
