"""What an ``agents`` worker process lends every run: made once per process, on first use.

Never at import: a prefork child must not share its parent's database
connections or Redis sockets, so a fork makes the environment again.
"""

from __future__ import annotations

import os
import threading

import redis

from aia_workers.agents.contracts import AgentEnvironment
from aia_workers.agents.llm import llm_from_settings
from aia_workers.backbone.announcements import to_webhooks
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.ml.artifacts import LocalArtifactStore
from aia_workers.settings import Settings, get_settings

__all__ = ["agent_environment", "environment_from_settings"]


def environment_from_settings(settings: Settings) -> AgentEnvironment:
    """A new environment for ``settings``: its own engine, Redis client and artifact store."""
    client = redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
    )
    return AgentEnvironment(
        settings=settings,
        sessions=make_sessionmaker(make_engine(settings)),
        artifacts=LocalArtifactStore(settings.artifact_root),
        redis=client,
        events=to_webhooks,
        llm=llm_from_settings(settings),
    )


_lock = threading.Lock()
_current: tuple[int, AgentEnvironment] | None = None


def agent_environment() -> AgentEnvironment:
    """This process's environment, made on first use (and again after a fork)."""
    global _current
    with _lock:
        if _current is None or _current[0] != os.getpid():
            _current = (os.getpid(), environment_from_settings(get_settings()))
        return _current[1]
