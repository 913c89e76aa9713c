"""``/v1/schedules``: tenants' schedules of catalog tasks, run by Celery beat."""
