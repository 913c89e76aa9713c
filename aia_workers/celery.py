"""The app that ``celery -A aia_workers`` runs: workers, beat, Flower and ``inspect``.

Celery looks for ``aia_workers.celery`` when the package itself holds no app,
so importing ``aia_workers`` or any contract in it builds none; only the
processes that import this module get the worker's app and its signal handlers.
"""

from __future__ import annotations

from aia_workers.backbone.app import create_worker_app

__all__ = ["app"]

app = create_worker_app()
