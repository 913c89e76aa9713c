"""Gauges read at each scrape: queue depth, the oldest waiting task's age, workers online.

The signals a queue's workers are scaled on (``ops/k8s``): what waits and for
how long, per queue, beside how many workers consume it. Read when Prometheus
scrapes, a few round trips whatever the backlog; a scrape that cannot reach
Redis or the broker reports ``aia_exporter_read_ok 0`` rather than stale values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from aia_workers.backbone.backlog import broker_depths, oldest_waits
from aia_workers.backbone.keys import WORKERS_KEY
from aia_workers.backbone.registry import online_by_queue
from aia_workers.settings import Settings

__all__ = ["QueueGauges"]

log = logging.getLogger(__name__)

_BROKER_TIMEOUT_SECONDS = 3.0


class QueueGauges(Collector):
    """A Prometheus collector of the deployment's queues, for ``queues``."""

    def __init__(self, settings: Settings, client: redis.Redis, queues: Sequence[str]) -> None:
        self._settings = settings
        self._redis = client
        self._queues = tuple(queues)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ok = GaugeMetricFamily(
            "aia_exporter_read_ok",
            "1 when this scrape read its source (redis, broker), 0 when it failed.",
            labels=["source"],
        )
        families: list[GaugeMetricFamily] = []
        try:
            families.extend(self._from_redis())
        except redis.RedisError as exc:
            log.warning("could not read the worker registry or the pending index: %s", exc)
            ok.add_metric(["redis"], 0)
        else:
            ok.add_metric(["redis"], 1)
        try:
            families.append(self._depths())
        except Exception as exc:  # a Redis or an AMQP error, or a timeout
            log.warning("could not read the queues' depths: %s", exc)
            ok.add_metric(["broker"], 0)
        else:
            ok.add_metric(["broker"], 1)
        yield from families
        yield ok

    def _from_redis(self) -> list[GaugeMetricFamily]:
        now = time.time()
        entries = self._redis.hgetall(WORKERS_KEY)
        workers = GaugeMetricFamily(
            "aia_workers_online",
            "Workers online (a heartbeat in the last 10 s) that consume each queue.",
            labels=["queue"],
        )
        for queue, hosts in online_by_queue(entries, now, self._queues).items():  # type: ignore[arg-type]
            workers.add_metric([queue], len(hosts))
        if not self._settings.broker_is_redis:
            # The pending index exists only when tasks are queued on a Redis broker.
            return [workers]
        oldest = GaugeMetricFamily(
            "aia_queue_oldest_age_seconds",
            "How long the oldest task queued on each queue and not started has waited (0: none).",
            labels=["queue"],
        )
        waits = oldest_waits(self._redis, self._queues, now)
        for queue in self._queues:
            oldest.add_metric([queue], waits.get(queue, 0.0))
        return [workers, oldest]

    def _depths(self) -> GaugeMetricFamily:
        depths = broker_depths(
            self._settings, self._redis, self._queues, timeout=_BROKER_TIMEOUT_SECONDS
        )
        depth = GaugeMetricFamily(
            "aia_queue_depth",
            "Messages waiting on each queue in the broker, not yet taken by a worker.",
            labels=["queue"],
        )
        for queue in self._queues:
            depth.add_metric([queue], depths.get(queue, 0))
        return depth
