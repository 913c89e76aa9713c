"""The Celery side of per-agent concurrency: the gate before a run, the sweep in each worker.

``AgentRunTask`` is the base of both tasks that run an agent, ``agents.run``
and ``agents.workflow_step``: each names its agent in its payload's
``agent_id`` (a step message without one runs ungated). It asks for a slot of
the run's agent before the task's own start (``AiaTask``): a run parked in
its agent's line has its message acknowledged unrun and stays ``queued``; a
run that holds a slot gives it back once its outcome is recorded
(``task_postrun``), whatever the outcome, and the runs handed a slot
meanwhile are sent again through Celery: same task id and kwargs, their turn
in a header, and the canvas context their message came with (a workflow
step's chain, chord and group, as ``Task.retry`` keeps them), so that the
canvas goes on past a step that waited. The domain is
``aia_workers.agents.concurrency``.

Redis unreachable at the gate: the run runs anyway, ungated, as a task whose
start cannot be recorded does (``AiaTask``); the work matters more than the cap.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import redis
import sqlalchemy.exc
from celery import signals
from celery.exceptions import Ignore

from aia_workers.agents.concurrency import (
    TURN_HEADER,
    Admission,
    AgentSlots,
    Sweeper,
    celery_sender,
    send_all,
)
from aia_workers.agents.environment import agent_environment
from aia_workers.agents.leases import RunLeases
from aia_workers.agents.store import AgentRepository
from aia_workers.backbone.tasking import AiaTask
from aia_workers.settings import DEFAULT_TENANT, get_settings

__all__ = ["AgentRunTask", "resend_options", "start_sweeper", "stop_sweeper"]

log = logging.getLogger(__name__)


_lock = threading.Lock()
_state: tuple[int, AgentSlots, RunLeases] | None = None


def _process_slots() -> tuple[AgentSlots, RunLeases]:
    # Made after a fork, on the run environment's Redis client.
    global _state
    with _lock:
        if _state is None or _state[0] != os.getpid():
            env = agent_environment()
            slots = AgentSlots.from_settings(env.redis, env.settings)
            _state = (os.getpid(), slots, RunLeases(slots))
        return _state[1], _state[2]


def _agent_of(kwargs: Mapping[str, Any]) -> str | None:
    payload = kwargs.get("payload")
    agent_id = payload.get("agent_id") if isinstance(payload, Mapping) else None
    return agent_id if isinstance(agent_id, str) and agent_id else None


def _cap(tenant: str, agent_id: str) -> int:
    """The agent's max_concurrency; 0 when it is gone; 1 when the database is unreachable."""
    try:
        with agent_environment().sessions() as session:
            agent = AgentRepository(session, tenant).get(agent_id)
            return 0 if agent is None else agent.max_concurrency
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
        # The default limit, the safe side: the next start after the database is back
        # (with none of the agent's runs left) reads the agent's own.
        log.warning("could not read agent %s's max_concurrency; admitting under 1", agent_id)
        return 1


# What a message carries besides its kwargs that the run needs to go on from it,
# named as ``Context.as_execution_options`` (what ``Task.retry`` sends again)
# names them for ``send_task``: a workflow step's place in its canvas, its root
# and parent task ids, the retries it has had. Time limits, expiry and routing
# come from the task type, as they did for the message first sent.
_RESENT_OPTIONS = (
    "chain",
    "chord",
    "group_id",
    "group_index",
    "link",
    "link_error",
    "root_id",
    "parent_id",
    "retries",
)


def resend_options(request: Any) -> dict[str, Any]:
    """The ``send_task`` options that send ``request``'s message again as it came
    (JSON: the message was); unset ones left out."""
    options = request.as_execution_options()
    return {key: options[key] for key in _RESENT_OPTIONS if options.get(key) is not None}


def _turn(request: Any) -> int:
    # Celery keeps custom headers as attributes of the request (and in ``headers``).
    value = getattr(request, TURN_HEADER, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(TURN_HEADER)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


class AgentRunTask(AiaTask):
    """A task that runs an agent (``agents.run``, ``agents.workflow_step``): holds one of
    its agent's slots while it runs, or waits parked."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        agent_id = _agent_of(kwargs)
        if request.id is None or request.called_directly or agent_id is None:
            return super().__call__(*args, **kwargs)
        tenant = kwargs.get("tenant") or DEFAULT_TENANT
        slots, leases = _process_slots()
        queue = (request.delivery_info or {}).get("routing_key") or "agents"
        send = celery_sender(self.app)

        def admit(cap: int | None) -> Admission:
            return slots.admit(
                tenant=tenant,
                agent_id=agent_id,
                run_id=request.id,
                cap=cap,
                turn=_turn(request),
                name=self.name,
                kwargs=dict(request.kwargs or kwargs),
                queue=queue,
                options=resend_options(request),
            )

        try:
            # The limit stored in Redis (by the API, at the agent's creation or
            # change); the database's only when Redis lost it.
            admission = admit(None)
            if admission.outcome == "unknown":
                cap = _cap(tenant, agent_id)
                if cap == 0:
                    # The agent is gone: the run fails at once, saying so, and holds nothing.
                    return super().__call__(*args, **kwargs)
                admission = admit(cap)
        except redis.RedisError:
            log.exception("could not ask for a slot of agent %s; run %s runs", agent_id, request.id)
            return super().__call__(*args, **kwargs)
        send_all(admission.handed, send)
        if admission.outcome == "parked":
            log.info("run %s waits for a slot of agent %s", request.id, agent_id)
            raise Ignore()
        if admission.outcome == "stale":
            log.info("dropping a stale copy of run %s of agent %s", request.id, agent_id)
            raise Ignore()
        if admission.outcome == "terminal":
            # Cancelled or over already: the start below skips it.
            return super().__call__(*args, **kwargs)
        # Given back after the run's outcome is recorded (``_release_after_run``), so
        # that the next run never starts before this one has ended.
        leases.hold(tenant, agent_id, request.id)
        return super().__call__(*args, **kwargs)

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        """Give the slot back, then send the retry: a retry sent first can reach another
        process while this attempt still holds the slot, and either start beside the
        next run or be parked and then dropped from the line by this attempt's release."""
        if self.request.id is not None:
            _give_back(self, self.request.id)
        return super().retry(*args, **kwargs)


def _release_after_run(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """``task_postrun``: free the slot a run held, whatever its outcome, and hand it on.

    Celery sends it after the outcome's own handlers (the task's terminal event)
    for every outcome a process lives through; a process that dies stops renewing
    the lease instead.
    """
    if isinstance(task, AgentRunTask) and task_id is not None:
        _give_back(task, task_id)


def _give_back(task: AgentRunTask, task_id: str) -> None:
    """Free the slot ``task_id`` holds in this process, if any, and hand it on."""
    slots, leases = _process_slots()
    held = leases.drop(task_id)
    if held is None:
        return
    tenant, agent_id, run_id = held
    try:
        handed = slots.release(tenant=tenant, agent_id=agent_id, run_id=run_id)
    except redis.RedisError:
        # The slot lapses after its lease, and the sweep hands it on.
        log.warning("could not free run %s's slot of agent %s", run_id, agent_id)
        return
    send_all(handed, celery_sender(task.app))


_sweeper: Sweeper | None = None


def start_sweeper(sender: Any = None, **_: Any) -> None:
    """Start this worker's sweeper (``worker_ready``): lapsed slots freed and handed on."""
    global _sweeper
    if _sweeper is not None:
        return
    from aia_workers.celery import app

    settings = get_settings()
    client = redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
    )
    slots = AgentSlots.from_settings(client, settings)
    name = getattr(sender, "hostname", None) or f"{os.getpid()}"
    _sweeper = Sweeper(slots, celery_sender(app), name=str(name))
    _sweeper.start()


def stop_sweeper(**_: Any) -> None:
    """Stop this worker's sweeper (``worker_shutdown``)."""
    if _sweeper is not None:
        _sweeper.stop()


# Only the workers that import the agents task module (those consuming the
# agents queue) gate runs and sweep; the handlers start a thread when the
# worker is ready, nothing at import.
signals.task_postrun.connect(_release_after_run, weak=False)
signals.worker_ready.connect(start_sweeper, weak=False)
signals.worker_shutdown.connect(stop_sweeper, weak=False)
