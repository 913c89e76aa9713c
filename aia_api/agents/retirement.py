"""A deleted agent leaves nothing of itself in Redis once its runs are over.

Its stored limit goes at once, so that a message of one of its runs that
arrives later asks for the agent, finds it gone and fails the run at once,
holding nothing. The runs waiting in its line fail now, saying so, and leave
it as their records end. Running runs finish, and give their slots back as
they end; the last one forgets the agent (``RETIRE_LUA``'s).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import redis

from aia_api.agents.limits import hand_on
from aia_api.services import Services
from aia_workers.agents.concurrency import retire_call
from aia_workers.agents.slot_scripts import RETIRE_LUA
from aia_workers.backbone.events import StreamLimits, dumps, transition_args
from aia_workers.backbone.scripts import TRANSITION_LUA
from aia_workers.backbone.states import Event

__all__ = ["retire_agent"]

log = logging.getLogger(__name__)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def retire_agent(svc: Services, tenant: str, agent_id: str) -> int:
    """Forget the deleted agent's limit, fail the runs waiting for its slots; how many.

    Redis unreachable: logged, and its waiting runs fail one by one as they are
    handed a slot, as they would have before.
    """
    keys, args = retire_call(tenant, agent_id, now=time.time()).keys_and_args()
    try:
        waiting = [_text(run) for run in await svc.redis.eval(RETIRE_LUA, len(keys), *keys, *args)]
        await _fail(svc, waiting, agent_id)
        # The slots handed to runs that were on their way came back as they failed.
        await hand_on(svc, tenant, agent_id)
    except redis.RedisError as exc:
        log.warning("could not clear deleted agent %s's slots: %s", agent_id, exc)
        return 0
    return len(waiting)


async def _fail(svc: Services, run_ids: Sequence[str], agent_id: str) -> None:
    if not run_ids:
        return
    error = {
        "type": "TaskFailure",
        "message": f"agent {agent_id} was deleted before this run started",
    }
    limits = StreamLimits.from_settings(svc.settings)
    script = svc.redis.register_script(TRANSITION_LUA)
    now = time.time()
    async with svc.redis.pipeline(transaction=False) as pipe:
        for run_id in run_ids:
            keys, args = transition_args(
                task_id=run_id,
                event=Event.FAILED,
                now=now,
                limits=limits,
                data={"error": error},
                fields={"error": dumps(error)},
            )
            await script(keys=keys, args=args, client=pipe)
        # A run that ended meanwhile answers "terminal" and keeps its outcome.
        await pipe.execute()
