"""The worker registry: which workers are online, and the queues each consumes.

Each worker keeps its entry in one Redis hash (``keys.WORKERS_KEY``), refreshed
with every heartbeat (``aia_workers.backbone.observability``); ``/status`` and
the worker metrics read it back here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

__all__ = ["WORKER_STALE_SECONDS", "online_by_queue"]

# A worker that has not sent a heartbeat (every 2 s) for this long is gone.
WORKER_STALE_SECONDS = 10.0


def online_by_queue(
    entries: Mapping[str, str], now: float, queues: Iterable[str] = ()
) -> dict[str, list[str]]:
    """Per queue, the sorted hostnames of the workers online that consume it.

    Every queue in ``queues`` is present, with no worker if none is online; an
    entry that cannot be read counts as no worker.
    """
    online: dict[str, list[str]] = {queue: [] for queue in queues}
    for hostname, raw in entries.items():
        try:
            entry = orjson.loads(raw)
            seen = float(entry.get("seen", 0))
        except (ValueError, TypeError, AttributeError):
            continue
        if now - seen > WORKER_STALE_SECONDS:
            continue
        for queue in entry.get("queues") or []:
            online.setdefault(str(queue), []).append(hostname)
    return {queue: sorted(hosts) for queue, hosts in online.items()}
