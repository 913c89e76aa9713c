"""The reference for ``locust_load.py``: the same Locust, closed-loop, on ``GET /health``.

``/health`` is the API's cheapest route (no credentials, no Redis, no database),
so what this run reaches is what Locust and one API process reach on this
machine at this moment, and the mix's figures are read as ratios to it.
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task

HEALTH = "/health"


class Health(FastHttpUser):
    wait_time = constant(0)

    @task
    def health(self) -> None:
        self.client.get(HEALTH)
