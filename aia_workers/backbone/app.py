"""How AIA's Celery apps are built: the API's enqueue app and the worker app.

Nothing here runs at import. ``create_celery_app`` gives the configured app
the API sends tasks with; ``create_worker_app`` adds what only a worker, beat
or Flower process wants, and ``aia_workers.celery`` holds the one such app that
``celery -A aia_workers`` finds. Creating either imports no task bodies: a
worker imports only the task modules of the queues it consumes (see
``import_task_modules``), so the webhooks worker never loads torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from celery import Celery, signals

from aia_workers.backbone.catalog import modules_for_queues
from aia_workers.backbone.connection import AiaAMQP
from aia_workers.backbone.observability import connect_handlers
from aia_workers.backbone.visibility import VisibilityKeeper
from aia_workers.logs.celery_hooks import connect_logging
from aia_workers.tracing.celery_hooks import connect_tracing

__all__ = ["create_celery_app", "create_worker_app", "import_task_modules"]


def create_celery_app() -> Celery:
    """The app configured from ``celeryconfig``, with no signal handler of the worker's.

    What the API's enqueue path needs: routes, queues, serializers and the
    broker connection. Its tasks are sent by name, so it registers none.
    """
    app = Celery("aia_workers", amqp=AiaAMQP)
    app.config_from_object("celeryconfig")
    return app


def create_worker_app() -> Celery:
    """The app of worker, beat and Flower processes.

    It publishes task events and keeps the worker registry through the
    handlers in ``aia_workers.backbone.observability``, keeps held messages
    visible (``VisibilityKeeper``), and imports its queues' task modules when
    the worker starts. It traces task runs and writes JSON log lines when
    Settings ask for them. Signal handlers are process-wide: build one such app
    per process (``aia_workers.celery.app``).
    """
    app = create_celery_app()
    app.steps["consumer"].add(VisibilityKeeper)
    connect_handlers()
    connect_tracing()
    connect_logging()
    signals.celeryd_init.connect(import_task_modules)
    return app


def import_task_modules(options: dict[str, Any] | None = None, **_: Any) -> None:
    """Import the task modules of the queues in ``options`` (a worker's, at ``celeryd_init``)."""
    queues = (options or {}).get("queues")
    if isinstance(queues, str):
        queues = [q for q in queues.split(",") if q]
    for module in modules_for_queues(queues or None):
        importlib.import_module(module)
