"""``aia exporter``: the workers' Prometheus metrics (aia_workers.telemetry)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

__all__ = ["run_exporter"]

log = logging.getLogger("aia.exporter")


def run_exporter(ns: argparse.Namespace) -> int:
    import redis
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.process_collector import ProcessCollector

    from aia_workers.backbone.states import Queue
    from aia_workers.logs.setup import configure_logging
    from aia_workers.settings import get_settings
    from aia_workers.telemetry.exporter import EventCounter
    from aia_workers.telemetry.queue_gauges import QueueGauges
    from aia_workers.telemetry.task_metrics import TaskMetrics

    settings = get_settings()
    configure_logging(settings, "aia-exporter", ns.log_level)

    def client(extra_timeout: float) -> redis.Redis:
        return redis.Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=settings.redis_timeout_seconds + extra_timeout,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    metrics = TaskMetrics(registry)
    # The scrape reads on a client of its own: the counter's blocks for a second at a time.
    scrape_client = client(0)
    registry.register(QueueGauges(settings, scrape_client, [q.value for q in Queue]))
    server, _ = start_http_server(ns.port, addr=ns.host, registry=registry)
    log.info("serving worker metrics on http://%s:%d/metrics", ns.host, server.server_port)

    stream_client = client(5)
    counter = EventCounter(stream_client, metrics)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # On a thread of its own, as the recorder: a signal handler on the main
    # thread must never set the Event while this thread waits on it.
    worker = threading.Thread(target=counter.run, args=(stop,), name="aia-exporter")
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    finally:
        stop.set()
        worker.join()
        server.shutdown()
        stream_client.close()
        scrape_client.close()
    return 0
