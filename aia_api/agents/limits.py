"""An agent's ``max_concurrency`` reaches its slots when it is created or changed.

The limit is stored in Redis beside the agent's slots, where every start reads
it, so that a start reads the database only when the stored limit was lost. A
higher one hands the new slots to the earliest parked runs now (their messages
are sent again through Celery); a lower one takes effect as running runs end.
"""

from __future__ import annotations

import logging
import time

import anyio.to_thread
import redis

from aia_api.http.problems import Problem
from aia_api.services import Services
from aia_workers.agents.concurrency import (
    ConcurrencyPolicy,
    celery_sender,
    parse_handovers,
    send_all,
    settle_call,
)
from aia_workers.agents.slot_scripts import SETTLE_LUA
from aia_workers.backbone.keys import agent_limit_key

__all__ = ["apply_limit", "hand_on", "store_limit"]

log = logging.getLogger(__name__)


async def store_limit(svc: Services, tenant: str, agent_id: str, cap: int) -> None:
    """Store a new agent's ``cap``, so that its first run's start need not read the database.

    Best effort: the agent exists once its row does, and a start that finds no
    stored limit reads the row and stores it (a hundred first runs at once would
    otherwise queue for the workers' database connections before they start).
    """
    try:
        # NX: a change stored meanwhile is newer than this one.
        await svc.redis.set(agent_limit_key(tenant, agent_id), cap, nx=True)
    except redis.RedisError as exc:
        log.warning("could not store agent %s's max_concurrency: %s", agent_id, exc)


async def hand_on(svc: Services, tenant: str, agent_id: str, cap: int | None = None) -> int:
    """Settle the agent's slots, storing ``cap`` first if given: lapsed ones freed, free
    ones handed to its earliest parked runs, whose messages are sent again; how many.

    RedisError when Redis is not reachable.
    """
    call = settle_call(
        tenant,
        agent_id,
        cap=cap,
        now=time.time(),
        policy=ConcurrencyPolicy.from_settings(svc.settings),
    )
    keys, args = call.keys_and_args()
    handed = parse_handovers(await svc.redis.eval(SETTLE_LUA, len(keys), *keys, *args))
    if handed:
        await anyio.to_thread.run_sync(lambda: send_all(handed, celery_sender(svc.celery)))
    return len(handed)


async def apply_limit(svc: Services, tenant: str, agent_id: str, cap: int) -> int:
    """Store ``cap`` as the agent's limit and hand out the slots it frees; how many."""
    try:
        return await hand_on(svc, tenant, agent_id, cap)
    except redis.RedisError as exc:
        # The change is in the database, but starts read the stored limit: say so,
        # rather than the generic "nothing was changed"; the same PATCH again applies it.
        log.warning("could not apply agent %s's new max_concurrency: %s", agent_id, exc)
        raise Problem(
            503,
            "service-unavailable",
            "Service unavailable",
            f"agent {agent_id}'s new max_concurrency is saved but Redis is not reachable, so "
            "its runs are still held to the old one; send the same PATCH again shortly",
            headers={"Retry-After": str(svc.settings.retry_after_seconds)},
        ) from None
