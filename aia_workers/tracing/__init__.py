"""OpenTelemetry traces: one trace from an HTTP request to the webhooks its task causes.

Off unless an OTLP endpoint is configured (``runtime``). The context crosses
process boundaries as a W3C ``traceparent``: in the Celery message headers
(``celery_hooks``, ``aia_workers.backbone.broker``), on the task's record and
its end event (``TRACEPARENT_FIELD``), and on the webhook outbox row.
"""
