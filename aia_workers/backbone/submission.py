"""Submitting a task from inside AIA (beat, a worker), recorded as the API records it.

A task that AIA itself starts on a tenant's behalf (a scheduled run, a drift
check's retraining) is a task like any other: its tenant sees it in the task
list, follows its stream, and it counts against the tenant's in-flight limit.
It goes through the same submit script as the API's, without the API's
batching or its direct push onto a Redis broker: the message is sent through
Celery once the record exists.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

from aia_workers.backbone.broker import broker_priority
from aia_workers.backbone.catalog import get_task_type
from aia_workers.backbone.events import (
    StreamLimits,
    dumps,
    submit_call,
    transition_call,
)
from aia_workers.backbone.keys import idempotency_key
from aia_workers.backbone.scripts import SUBMIT_LUA, TRANSITION_LUA
from aia_workers.backbone.states import Event
from aia_workers.errors import AiaError, EnqueueError
from aia_workers.settings import Settings

__all__ = ["BrokerRefusedError", "Submission", "TenantBusyError", "submit_task"]


class TenantBusyError(AiaError):
    """The tenant has as many tasks in flight as it may; nothing was recorded."""


class BrokerRefusedError(EnqueueError):
    """The broker did not take the message; the task's record is marked failed."""

    def __init__(self, task_id: str, message: str) -> None:
        super().__init__(message)
        self.task_id = task_id


@dataclass(frozen=True, slots=True)
class Submission:
    task_id: str
    # False when an idempotency key named a task submitted before.
    created: bool


def submit_task(
    client: redis.Redis,
    app: Celery,
    settings: Settings,
    *,
    tenant: str,
    type_name: str,
    payload: Mapping[str, Any],
    idempotency: str | None = None,
) -> Submission:
    """Record and enqueue a ``type_name`` task for ``tenant``.

    ``payload`` is validated against the catalog (pydantic's ValidationError when
    it does not fit). With ``idempotency``, a second call with the same key and
    payload answers the first call's task instead of making another, so a caller
    that may run twice (a task delivered again) starts its work once.
    Raises TenantBusyError at the tenant's in-flight limit and BrokerRefusedError when
    the broker refuses the message (the record is then marked failed).
    """
    task_type = get_task_type(type_name)
    body = task_type.payload.model_validate(dict(payload)).model_dump(mode="json")
    task_id = str(uuid.uuid4())
    limits = StreamLimits.from_settings(settings)
    key = None
    if idempotency:
        key = idempotency_key(tenant, hashlib.sha256(idempotency.encode()).hexdigest())
    call = submit_call(
        task_id=task_id,
        tenant=tenant,
        type_name=task_type.name,
        queue=task_type.queue.value,
        now=time.time(),
        limits=limits,
        payload_json=dumps(body),
        fingerprint=hashlib.sha256(dumps([task_type.name, body]).encode()).hexdigest(),
        idempotency_key=key,
        broker_key="",
        broker_message="",
        priority=None,
        eta=None,
        max_inflight=settings.tenant_max_inflight,
    )
    keys, args = call.keys_and_args()
    kind, ident = (_text(v) for v in client.register_script(SUBMIT_LUA)(keys=keys, args=args))
    if kind in ("replay", "conflict"):
        # A conflict is the same key with another payload: the work the key
        # stands for was started already, which is what the caller guards against.
        return Submission(ident, created=False)
    if kind == "busy":
        raise TenantBusyError(f"tenant {tenant!r} has {ident} tasks in flight, its most at once")
    if kind != "created":
        raise ValueError(f"unexpected reply from the submit script: {kind!r}")
    try:
        app.send_task(
            task_type.name,
            task_id=task_id,
            kwargs={"payload": body, "tenant": tenant},
            queue=task_type.queue.value,
            priority=broker_priority(None, redis=settings.broker_is_redis),
            retry=False,
        )
    except Exception as exc:
        error = {"type": "EnqueueError", "message": f"the broker refused the task: {exc}"}
        move = transition_call(
            task_id=task_id,
            event=Event.FAILED,
            now=time.time(),
            limits=limits,
            data={"error": error},
            fields={"error": dumps(error)},
        )
        keys, args = move.keys_and_args()
        client.register_script(TRANSITION_LUA)(keys=keys, args=args)
        raise BrokerRefusedError(task_id, error["message"]) from exc
    return Submission(task_id, created=True)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
