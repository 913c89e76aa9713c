"""Workflows: graphs of agent steps run as Celery canvas, one AIA task per step."""
