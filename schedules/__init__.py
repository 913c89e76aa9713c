"""Celery beat schedules: the system ones (``system.py``); tenants' live in the database."""
