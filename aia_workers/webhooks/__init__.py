"""Webhooks on the ``webhooks`` queue: signed deliveries from an outbox, retried, logged."""
