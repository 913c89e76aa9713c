"""The ``webhooks.deliver_batch`` task, and the relay that feeds it, in webhooks workers only.

Deliveries are AIA's own work, not tasks a caller submits: they are plain
Celery tasks (no AIA task record, no ``task.*`` events of their own, which
would announce every delivery with another delivery). Their state lives in
the webhook tables, where the attempt log shows it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Task, signals

from aia_workers.backbone.publisher import get_publisher
from aia_workers.backbone.states import Queue
from aia_workers.celery import app
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.settings import get_settings
from aia_workers.tracing.context import TRACEPARENT
from aia_workers.webhooks.delivery import Continuation, DeliveryConfig, deliver_batch
from aia_workers.webhooks.http import new_client
from aia_workers.webhooks.relay import Relay

__all__ = ["DELIVER", "DELIVER_BATCH", "deliver_message", "deliver_messages"]

DELIVER = "webhooks.deliver"
DELIVER_BATCH = "webhooks.deliver_batch"
# Messages per batch task. A batch is claimed in one statement and its
# attempts recorded in a few, and one Celery task carries it: per delivery,
# that is what kept a worker process near 100/s (bench/webhook_delivery.py).
_BATCH_SIZE = 50
# How long a batch task goes on leasing its tenants' next messages itself.
_CONTINUE_SECONDS = 5.0

_lock = threading.Lock()
_state: dict[str, Any] = {}
_relay: Relay | None = None


def _resources() -> dict[str, Any]:
    """Sessions, the HTTP client and the delivery settings of this process."""
    with _lock:
        if _state.get("pid") != os.getpid():
            settings = get_settings()
            _state.update(
                pid=os.getpid(),
                sessions=make_sessionmaker(make_engine(settings)),
                # Shared by the pool's threads.
                client=new_client(),
                config=DeliveryConfig.from_settings(settings),
                more=Continuation(
                    tenant_max_inflight=settings.webhook_tenant_max_inflight,
                    seconds=_CONTINUE_SECONDS,
                    most=_BATCH_SIZE,
                ),
            )
        return _state


_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    # The longest delivery deadline allowed (150 s), plus the bookkeeping around
    # it: a batch's attempts run at once. Only a prefork pool enforces these: in
    # the threads pool that webhooks workers run, each attempt's own deadline
    # (deadline.py) is what ends it.
    "time_limit": 180,
    "soft_time_limit": 170,
}


def _deliver(messages: list[tuple[str, str]], *, going_on: bool) -> list[dict[str, Any]]:
    state = _resources()
    return deliver_batch(
        state["sessions"],
        state["client"],
        state["config"],
        messages,
        on_recorded=_made_room,
        more=state["more"] if going_on else None,
    )


def _made_room() -> None:
    if _relay is not None:
        # Its tenants have fewer deliveries in flight: a message the relay held
        # back goes now rather than at its next poll, which would hold a busy
        # tenant to AIA_WEBHOOK_TENANT_MAX_INFLIGHT deliveries a poll
        # (bench/webhook_delivery.py: 14/s instead of 64/s). The relay runs in
        # this process in the threads pool webhooks workers use.
        _relay.poke()


@app.task(name=DELIVER_BATCH, **_TASK_OPTIONS)
def deliver_messages(self: Task, messages: list[list[str]]) -> dict[str, Any]:
    """The next attempt at each of ``messages``, [message id, tenant] pairs."""
    return {"outcomes": _deliver([(ident, tenant) for ident, tenant in messages], going_on=True)}


@app.task(name=DELIVER, **_TASK_OPTIONS)
def deliver_message(self: Task, message_id: str, tenant: str) -> dict[str, Any]:
    """One message's next attempt: a traced message's task, whose run continues its trace,
    and what relays before batches sent."""
    # Alone: messages leased along the way would join this one's trace.
    [outcome] = _deliver([(message_id, tenant)], going_on=False)
    return outcome


def _send(due: Sequence[tuple[str, str]], traces: Mapping[str, str]) -> None:
    untraced = [[ident, tenant] for ident, tenant in due if ident not in traces]
    # One producer (one broker connection) for the whole pass, not one a task.
    with app.producer_or_acquire() as producer:
        for start in range(0, len(untraced), _BATCH_SIZE):
            app.send_task(
                DELIVER_BATCH,
                kwargs={"messages": untraced[start : start + _BATCH_SIZE]},
                queue=Queue.WEBHOOKS.value,
                producer=producer,
            )
        for message_id, tenant in due:
            traced = traces.get(message_id)
            if traced:
                # A task of its own, whose run continues the trace of what caused the message.
                app.send_task(
                    DELIVER,
                    kwargs={"message_id": message_id, "tenant": tenant},
                    queue=Queue.WEBHOOKS.value,
                    producer=producer,
                    headers={TRACEPARENT: traced},
                )


@signals.worker_ready.connect
def _start_relay(sender: Any = None, **_: Any) -> None:
    global _relay
    consumer = getattr(sender, "app", None)
    queues = set(consumer.amqp.queues.consume_from) if consumer is not None else set()
    if queues and Queue.WEBHOOKS.value not in queues:
        return
    settings = get_settings()
    state = _resources()
    _relay = Relay(
        state["sessions"],
        get_publisher().client,
        _send,
        interval_seconds=settings.webhook_relay_interval_seconds,
        lease_seconds=state["config"].lease_seconds,
        tenant_max_inflight=settings.webhook_tenant_max_inflight,
    )
    _relay.start()


@signals.worker_shutdown.connect
def _stop_relay(**_: Any) -> None:
    if _relay is not None:
        _relay.stop()
