"""``aia exporter``: the workers' Prometheus metrics (aia_workers.telemetry)."""

from __future__ import annotations

import argparse
import logging
import threading

__all__ = ["run_exporter"]

log = logging.getLogger("aia.exporter")


def run_exporter(ns: argparse.Namespace) -> int:
    import redis
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.process_collector import ProcessCollector

    from aia_api.cli.loops import run_until_stopped, stream_reader_client
    from aia_workers.backbone.app import create_celery_app
    from aia_workers.backbone.catalog import CATALOG
    from aia_workers.backbone.states import Queue
    from aia_workers.logs.setup import configure_logging
    from aia_workers.settings import get_settings
    from aia_workers.telemetry.celery_events import CeleryEventCounter
    from aia_workers.telemetry.exporter import EventCounter
    from aia_workers.telemetry.queue_gauges import QueueGauges
    from aia_workers.telemetry.task_metrics import TaskMetrics

    settings = get_settings()
    configure_logging(settings, "aia-exporter", ns.log_level)

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    metrics = TaskMetrics(registry)
    # The scrape reads on a client of its own: the counter's blocks for a second at a time.
    scrape_client = redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
    )
    registry.register(QueueGauges(settings, scrape_client, [q.value for q in Queue]))
    server, _ = start_http_server(ns.port, addr=ns.host, registry=registry)
    log.info("serving worker metrics on http://%s:%d/metrics", ns.host, server.server_port)

    stream_client = stream_reader_client(settings)
    counter = EventCounter(stream_client, metrics)
    # Tasks outside the catalog (webhook deliveries) keep no record on the stream.
    celery_events = CeleryEventCounter(
        create_celery_app(), metrics, lambda name: name not in CATALOG
    )

    def count(stop: threading.Event) -> None:
        receiver = threading.Thread(
            target=celery_events.run, args=(stop,), name="aia-exporter-events", daemon=True
        )
        receiver.start()
        counter.run(stop)
        receiver.join(5)

    try:
        run_until_stopped(count, name="aia-exporter")
    finally:
        server.shutdown()
        stream_client.close()
        scrape_client.close()
    return 0
