"""AIA's Celery side: the task backbone, the catalog and the domains.

Importing the package builds no Celery app: ``celery -A aia_workers`` finds
the worker's app in ``aia_workers.celery``, and the API builds its own from
``aia_workers.backbone.app.create_celery_app``.
"""
