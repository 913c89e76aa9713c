"""The task backbone: the Celery app, the catalog, task events in Redis, the recorder, fairness."""
