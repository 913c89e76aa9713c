"""The worker side's handle on task events: one blocking Redis client per process."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import redis

from aia_workers.events import (
    TRANSITION_LUA,
    StreamLimits,
    TransitionOutcome,
    transition_args,
)
from aia_workers.settings import Settings, get_settings
from aia_workers.states import Event

__all__ = ["EventPublisher", "get_publisher", "reset_publisher"]

log = logging.getLogger(__name__)


class EventPublisher:
    """Moves tasks between states and publishes the events, from worker code."""

    def __init__(self, client: redis.Redis, limits: StreamLimits) -> None:
        self.client = client
        self._limits = limits
        self._transition = client.register_script(TRANSITION_LUA)

    @classmethod
    def from_settings(cls, settings: Settings) -> EventPublisher:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
            health_check_interval=30,
        )
        return cls(client, StreamLimits.from_settings(settings))

    def transition(
        self,
        task_id: str,
        event: Event,
        *,
        data: Mapping[str, Any] | None = None,
        fields: Mapping[str, str] | None = None,
        fallback: tuple[str, str, str] = ("", "", ""),
    ) -> TransitionOutcome:
        """Apply ``event`` to the task; a terminal task is left as it is."""
        keys, args = transition_args(
            task_id=task_id,
            event=event,
            now=time.time(),
            limits=self._limits,
            data=data,
            fields=fields,
            fallback=fallback,
        )
        return TransitionOutcome.from_reply(self._transition(keys=keys, args=args))


_state: tuple[int, EventPublisher] | None = None


def get_publisher() -> EventPublisher:
    """This process's publisher, made on first use after start or fork."""
    global _state
    pid = os.getpid()
    if _state is None or _state[0] != pid:
        # A prefork child must not share its parent's sockets.
        _state = (pid, EventPublisher.from_settings(get_settings()))
    return _state[1]


def reset_publisher() -> None:
    """Forget this process's publisher, e.g. in a freshly forked child."""
    global _state
    _state = None
