"""Consumer groups on a Redis stream: what the recorder and the metrics exporter share.

Each reads the task event stream in a group of its own, acknowledges what it
has handled, and takes over what a consumer that died left pending.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

__all__ = ["Claimed", "claim_idle", "ensure_group"]


def ensure_group(client: redis.Redis, stream: str, group: str, *, start: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) reading from ``start``, unless it exists."""
    try:
        client.xgroup_create(stream, group, id=start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


@dataclass(frozen=True, slots=True)
class Claimed:
    """One batch taken over from idle consumers: the ``entries`` still in the stream, and
    whether some were ``trimmed`` from it meanwhile.

    Redis 6.2 answers a trimmed entry as nil, id and all (7.0 drops it from the
    pending list itself): it is the claimer's now, and reading its own pending
    entries (from "0") names it, to be acknowledged.
    """

    entries: list[tuple[Any, dict[str, str]]]
    trimmed: bool


def claim_idle(
    client: redis.Redis,
    stream: str,
    group: str,
    consumer: str,
    *,
    idle_ms: int,
    batch: int,
) -> Iterator[Claimed]:
    """Take over, batch by batch, the entries other consumers left pending for ``idle_ms``."""
    start: Any = "0-0"
    while True:
        reply: Any = client.xautoclaim(stream, group, consumer, idle_ms, start, count=batch)
        start, claimed = reply[0], reply[1]
        live = [entry for entry in claimed if entry and entry[0] is not None]
        yield Claimed(live, len(live) < len(claimed))
        if start in ("0-0", b"0-0"):
            return
