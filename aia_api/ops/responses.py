"""Response models of liveness and the status report."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aia_api.http.responses import Closed

__all__ = [
    "DependencyCheck",
    "Health",
    "StatusReport",
]


class Health(Closed):
    status: Literal["ok"]


class DependencyCheck(BaseModel):
    """One dependency's check; a healthy one adds what it found (queue depths, workers)."""

    model_config = ConfigDict(extra="allow")

    ok: bool
    latency_ms: float | None = None
    error: str | None = Field(default=None, description="Why the check failed.")


class StatusReport(Closed):
    status: Literal["ok", "degraded"]
    checks: dict[str, DependencyCheck] = Field(
        description="By dependency: `database`, `redis`, `broker` (its `queue_depths`, and "
        "on a Redis broker `oldest_waits`: seconds the oldest task not yet started has "
        "waited, per queue), `workers`."
    )
