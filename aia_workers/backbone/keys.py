"""The Redis names of the task backbone, which the API and the workers share.

Every key and channel a task touches is named here, once: the API's submit,
the workers' transitions, the recorder, the rescuer and the fair shares all
build their names through these functions, so the layout cannot drift
between them. The Lua scripts (``aia_workers.backbone.scripts``) get every
name they touch from these, through KEYS.
"""

from __future__ import annotations

import json

__all__ = [
    "AGENTS_ACTIVE_KEY",
    "AGENTS_SWEEP_LOCK",
    "DRIFT_LATEST_KEY",
    "NO_BROKER_LIST",
    "NO_IDEMPOTENCY_KEY",
    "RECORDER_DEAD_LETTERS",
    "RECORDER_STREAM",
    "WORKERS_KEY",
    "agent_entries_key",
    "agent_limit_key",
    "agent_member",
    "agent_parked_key",
    "agent_slots_key",
    "agent_turns_key",
    "channel",
    "dead_letter_entries_key",
    "dead_letters_key",
    "events_key",
    "idempotency_key",
    "inflight_key",
    "pending_key",
    "slots_key",
    "task_key",
    "waiting_key",
]

# Every event of every task, for the recorder to copy into the database.
RECORDER_STREAM = "aia:recorder"
# Recorder stream entries the recorder could not write because they are bad,
# kept for a person to look at; never entries that met a database that was down.
RECORDER_DEAD_LETTERS = "aia:recorder:dead"
# Each live worker's registration (hostname -> JSON), refreshed by its
# heartbeats and read by the API's /status.
WORKERS_KEY = "aia:workers"
# The latest drift verdict of every model (field: tenant and model, value: JSON),
# written by each drift check, so that a /metrics scrape costs one HGETALL.
DRIFT_LATEST_KEY = "aia:drift:latest"
# Stand-ins in a script's KEYS for a key the call does not use, so that every
# key keeps its position.
NO_IDEMPOTENCY_KEY = "aia:idem:none"
NO_BROKER_LIST = "aia:broker:none"
# Agents whose runs hold or wait for a slot (members: ``agent_member``), for the sweeper.
AGENTS_ACTIVE_KEY = "aia:agents:active"
# Taken for one sweep interval by the agents worker that sweeps the agents' slots.
AGENTS_SWEEP_LOCK = "aia:agents:sweeping"


def task_key(task_id: str) -> str:
    """The task's live record: a hash of its status, payload, result and bookkeeping."""
    return f"aia:task:{task_id}"


def events_key(task_id: str) -> str:
    """The task's capped replay stream: its events, with ids ``0-<seq>``."""
    return f"aia:task:{task_id}:events"


def channel(task_id: str) -> str:
    """The pub/sub channel the task's events are published on, live."""
    return f"aia:task:{task_id}:live"


def inflight_key(tenant: str) -> str:
    """How many of the tenant's tasks are queued or running (the in-flight cap's count)."""
    return f"aia:inflight:{tenant}"


def idempotency_key(tenant: str, key_digest: str) -> str:
    """The task a tenant's Idempotency-Key (by its digest) made, with the request's fingerprint."""
    return f"aia:idem:{tenant}:{key_digest}"


def pending_key(queue: str) -> str:
    """Tasks the API queued on Redis and no worker has started, scored by the time
    each was queued (a task put back to wait for a slot: the time it is due)."""
    return f"aia:pending:{queue}"


def dead_letters_key(tenant: str) -> str:
    """The tenant's quarantined task ids, scored by the time each was quarantined."""
    return f"aia:deadletters:{tenant}"


def dead_letter_entries_key(tenant: str) -> str:
    """The tenant's dead letters by task id: JSON with what showing and replaying need."""
    return f"aia:deadletters:{tenant}:entries"


def slots_key(queue: str, tenant: str) -> str:
    """Task ids running for ``tenant`` on ``queue``, scored by when each slot lapses."""
    return f"aia:slots:{queue}:{tenant}"


def waiting_key(queue: str, tenant: str) -> str:
    """Task ids of ``tenant`` put back to wait for a slot on ``queue``, scored by when
    each entry lapses if its task does not ask again."""
    return f"aia:slots:{queue}:{tenant}:waiting"


# Per-agent concurrency (aia_workers/agents/concurrency.py): each agent's keys
# share the prefix ``aia:agent:<tenant>:<agent id>``.


def _agent(tenant: str, agent_id: str) -> str:
    return f"aia:agent:{tenant}:{agent_id}"


def agent_member(tenant: str, agent_id: str) -> str:
    """The agent's member of AGENTS_ACTIVE_KEY: its tenant and id, as a JSON pair."""
    return json.dumps([tenant, agent_id])


def agent_slots_key(tenant: str, agent_id: str) -> str:
    """Runs of the agent holding a slot (running, or handed one and on their way),
    scored by when each slot lapses."""
    return f"{_agent(tenant, agent_id)}:slots"


def agent_parked_key(tenant: str, agent_id: str) -> str:
    """Runs of the agent waiting for a slot, scored by when each was submitted."""
    return f"{_agent(tenant, agent_id)}:parked"


def agent_entries_key(tenant: str, agent_id: str) -> str:
    """What sending each parked (or handed-over, not yet started) run again needs: JSON."""
    return f"{_agent(tenant, agent_id)}:entries"


def agent_turns_key(tenant: str, agent_id: str) -> str:
    """Each waiting or running run's turn: how many times its message was sent again;
    a message of an older turn is a stale copy."""
    return f"{_agent(tenant, agent_id)}:turns"


def agent_limit_key(tenant: str, agent_id: str) -> str:
    """The agent's max_concurrency: stored by the API when the agent is created or its
    limit changed, and by a start that found none (read from the database)."""
    return f"{_agent(tenant, agent_id)}:limit"
