"""Putting back a task whose tenant has no free slot on its queue.

The start that finds every slot of the task's tenant taken changes nothing
(``TRANSITION_LUA``'s ``deferred`` outcome): the task stays queued, with no
event. Its message is then replaced by one that brings it back a little later,
at the back of its queue, and the worker's process goes on to other tenants'
tasks meanwhile.

On Redis, a task the API queued directly has its message in its record, for
``aia_workers.backbone.rescue``. There DEFER_LUA replaces it in one step: it
acknowledges the message being deferred, queues the new one (with an ETA and
a delivery tag of its own) and records it as the task's message, with the
time it is due in the pending index. A worker killed at any point leaves the
old message held (the transport restores it after the visibility timeout) or
the new one queued: never neither, never both; and the rescuer still finds the
new one if a dying worker takes it off the list unrecorded.

Elsewhere (RabbitMQ, or a task that came from beat or a retry) Celery
publishes the copy, as it publishes a retry, and the old message is
acknowledged after it: a worker killed between the two leaves both, and the
task may start twice, as after any redelivery.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from celery import Task
from celery.exceptions import Reject
from kombu.transport.redis import Channel

from aia_workers.backbone.broker import celery_message
from aia_workers.backbone.events import TransitionOutcome
from aia_workers.backbone.fairness import FairShare
from aia_workers.backbone.keys import pending_key, task_key
from aia_workers.backbone.publisher import get_publisher
from aia_workers.backbone.scripts import DEFER_LUA, DeferCall
from aia_workers.tracing.context import TRACEPARENT

__all__ = ["put_back"]

log = logging.getLogger(__name__)


def put_back(
    task: Task, outcome: TransitionOutcome, *, queue: str, tenant: str, fair: FairShare
) -> float:
    """Queue ``task`` again, to ask for a slot after a wait; the wait in seconds.

    The caller then acknowledges the message that brought it (``Ignore``).
    Raises Reject (requeue) when the task could not be queued again, so that
    the broker keeps its message instead.
    """
    cap = fair.cap_for(queue)
    wait = fair.defer_seconds_for(outcome.waiting or 0, cap)
    try:
        if outcome.direct:
            _replace_message(task, queue, wait)
        else:
            task.signature_from_request(countdown=wait).apply_async()
    except Exception as exc:
        log.warning(
            "could not put back task %s; its message goes back to the broker",
            task.request.id,
            exc_info=True,
        )
        raise Reject(exc, requeue=True) from exc
    log.info(
        "task %s waits %.1f s: tenant %s runs %s of its %d on %s, with %s waiting",
        task.request.id,
        wait,
        tenant,
        outcome.running,
        cap,
        queue,
        outcome.waiting,
    )
    return wait


def _replace_message(task: Task, queue: str, wait: float) -> None:
    request = task.request
    due = time.time() + wait
    tag = str(uuid.uuid4())
    message = celery_message(
        task_id=request.id,
        name=task.name,
        kwargs=dict(request.kwargs or {}),
        queue=queue,
        eta=datetime.fromtimestamp(due, UTC),
        broker_prio=(request.delivery_info or {}).get("priority"),
        delivery_tag=tag,
        # The same message again: its run continues the same enqueue's span.
        traceparent=getattr(request, TRACEPARENT, None),
    )
    unacked, index = _unacked_keys(task)
    keys, args = DeferCall(
        task=task_key(request.id),
        unacked=unacked,
        unacked_index=index,
        pending=pending_key(queue),
        task_id=request.id,
        new_message=message,
        new_tag=tag,
        due=repr(due),
    ).keys_and_args()
    get_publisher().client.register_script(DEFER_LUA)(keys=keys, args=args)


def _unacked_keys(task: Task) -> tuple[str, str]:
    # Where kombu's Redis transport keeps the messages workers hold, as the
    # worker's own transport options name them.
    options: dict[str, Any] = task.app.conf.broker_transport_options or {}
    prefix = options.get("global_keyprefix", Channel.global_keyprefix)
    return (
        prefix + options.get("unacked_key", Channel.unacked_key),
        prefix + options.get("unacked_index_key", Channel.unacked_index_key),
    )
