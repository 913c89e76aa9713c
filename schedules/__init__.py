"""Celery beat schedules: the static system ones and, later, user-defined ones."""
