"""AIA's Celery side: the app, the task catalog and the domains."""

from aia_workers.backbone.app import app

__all__ = ["app"]
