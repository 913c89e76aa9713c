"""Each model's latest drift verdict in one Redis hash, for the API's Prometheus gauges.

A drift check writes its verdict here after storing its report, so a scrape of
``/metrics`` reads every model's with one HGETALL instead of querying the
database. The hash is ``keys.DRIFT_LATEST_KEY``; a field is the JSON array
``[tenant, model]`` and its value the JSON of ``LatestVerdict``. A verdict older
than the one already there (two checks of a model finishing out of order, or a
redelivered task) does not replace it. Light: the API imports ``read_latest``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import redis

from aia_workers.backbone.keys import DRIFT_LATEST_KEY

__all__ = ["LatestVerdict", "read_latest", "record_latest"]

# KEYS[1] the hash; ARGV: field, value, the verdict's time. Set unless the
# field holds a later verdict (Redis 6.2 has cjson in Lua).
_SET_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local ok, held = pcall(cjson.decode, current)
  if ok and type(held) == 'table' and tonumber(held['at']) and
     tonumber(held['at']) > tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class LatestVerdict:
    """A model's latest report: its share of drifted features and verdict, and when (unix s)."""

    tenant: str
    model: str
    version: int
    report_id: str
    drifted: bool
    drifted_share: float
    at: float


def record_latest(client: redis.Redis, verdict: LatestVerdict) -> bool:
    """Keep ``verdict`` as its model's latest unless a later one is there; whether it was kept."""
    field = json.dumps([verdict.tenant, verdict.model])
    value = json.dumps(asdict(verdict), separators=(",", ":"))
    kept = client.register_script(_SET_IF_NEWER)(
        keys=[DRIFT_LATEST_KEY], args=[field, value, repr(verdict.at)]
    )
    return bool(kept)


def read_latest(entries: Mapping[Any, Any]) -> list[LatestVerdict]:
    """The verdicts in an HGETALL of the hash (bytes or str); malformed entries are skipped."""
    verdicts = []
    for raw in entries.values():
        try:
            data = json.loads(raw)
            verdicts.append(
                LatestVerdict(
                    tenant=str(data["tenant"]),
                    model=str(data["model"]),
                    version=int(data["version"]),
                    report_id=str(data["report_id"]),
                    drifted=bool(data["drifted"]),
                    drifted_share=float(data["drifted_share"]),
                    at=float(data["at"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return verdicts
