"""Keeps the agent slots of the runs a process runs from lapsing, while it lives.

An agent's slot lapses a lease after it was last renewed
(``aia_workers.agents.concurrency``), so that a process killed mid-run gives
its runs' slots back by itself. One thread per process renews the slots of the
runs it runs, three times per lease; a prefork child makes its own after the fork.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from aia_workers.agents.concurrency import AgentSlots

__all__ = ["RunLeases"]

log = logging.getLogger(__name__)


class RunLeases:
    """Renews the agent slots held by the runs running in this process."""

    def __init__(self, slots: AgentSlots) -> None:
        self._slots = slots
        self._held: dict[str, tuple[str, str, str]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, tenant: str, agent_id: str, run_id: str) -> None:
        """Renew the slot of ``run_id`` until ``drop``."""
        with self._lock:
            self._held[run_id] = (tenant, agent_id, run_id)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="aia-agent-leases", daemon=True)
            self._thread.start()

    def drop(self, run_id: str) -> tuple[str, str, str] | None:
        """Stop renewing; the (tenant, agent id, run id) that was held, for its release."""
        with self._lock:
            return self._held.pop(run_id, None)

    def renew(self) -> int:
        """Renew every held slot now; how many were renewed."""
        with self._lock:
            held = list(self._held.values())
        return self._slots.renew(held)

    def _run(self) -> None:
        while True:
            time.sleep(self._slots.policy.renew_seconds)
            try:
                self.renew()
            except redis.RedisError as exc:
                # A slot outlives two missed renewals; the next one may get through.
                log.warning("could not renew the agent slots of running runs: %s", exc)
            except Exception:
                # A keeper that died would let its runs' slots lapse while they run.
                log.exception("could not renew the agent slots of running runs")
