"""How each kind of AIA process is started: one profile per worker queue.

The Procfile, ``aia worker`` and ``aia dev`` all start workers from these
profiles, so a queue's pool and concurrency are decided in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from aia_workers.backbone.states import Queue

__all__ = ["PROFILES", "WorkerProfile"]


@dataclass(frozen=True, slots=True)
class WorkerProfile:
    """The Celery worker options that fit one queue's work."""

    queue: Queue
    pool: str
    concurrency: int
    prefetch_multiplier: int = 4
    max_memory_per_child_kib: int | None = None

    def celery_args(self, *, hostname: str | None = None) -> list[str]:
        """Arguments after ``celery -A aia_workers``."""
        args = [
            "worker",
            "-Q",
            self.queue.value,
            "-P",
            self.pool,
            "-c",
            str(self.concurrency),
            f"--prefetch-multiplier={self.prefetch_multiplier}",
            "-n",
            hostname or f"{self.queue.value}@%h",
        ]
        if self.max_memory_per_child_kib:
            args.append(f"--max-memory-per-child={self.max_memory_per_child_kib}")
        return args


PROFILES: Mapping[Queue, WorkerProfile] = MappingProxyType(
    {
        # Agents wait on tools and models but must honour time limits: prefork.
        Queue.AGENTS: WorkerProfile(Queue.AGENTS, "prefork", 4),
        # CPU-bound training: one task at a time per process, none held back
        # from idle workers. A process is replaced when a task leaves it over
        # 4 GiB resident, not after a number of tasks, so the models it keeps
        # loaded for predictions survive.
        Queue.ML: WorkerProfile(
            Queue.ML, "prefork", 1, prefetch_multiplier=1, max_memory_per_child_kib=4 * 1024**2
        ),
        Queue.DRIFT: WorkerProfile(Queue.DRIFT, "prefork", 2),
        # I/O-bound deliveries, each with its own request timeout: many threads.
        Queue.WEBHOOKS: WorkerProfile(Queue.WEBHOOKS, "threads", 64, prefetch_multiplier=2),
        Queue.DEFAULT: WorkerProfile(Queue.DEFAULT, "prefork", 2),
    }
)
