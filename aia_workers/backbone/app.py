"""The Celery app shared by workers, beat, Flower and the API's enqueue path.

Creating the app imports no task bodies. A worker imports only the task
modules of the queues it consumes (see ``_import_task_modules``), so the
webhooks worker never loads torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from celery import Celery, signals

from aia_workers.backbone.catalog import modules_for_queues
from aia_workers.backbone.connection import AiaAMQP
from aia_workers.backbone.visibility import VisibilityKeeper

__all__ = ["app"]

app = Celery("aia_workers", amqp=AiaAMQP)
app.config_from_object("celeryconfig")
app.steps["consumer"].add(VisibilityKeeper)

# Signal handlers that publish task events and keep the worker registry.
importlib.import_module("aia_workers.backbone.observability")


@signals.celeryd_init.connect
def _import_task_modules(options: dict[str, Any] | None = None, **_: Any) -> None:
    queues = (options or {}).get("queues")
    if isinstance(queues, str):
        queues = [q for q in queues.split(",") if q]
    for module in modules_for_queues(queues or None):
        importlib.import_module(module)
