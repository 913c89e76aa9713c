"""The ``webhooks.deliver`` task, and the relay that feeds it, in webhooks workers only.

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
from aia_workers.webhooks.delivery import DeliveryConfig, deliver
from aia_workers.webhooks.http import new_client
from aia_workers.webhooks.relay import Relay

__all__ = ["DELIVER", "deliver_message"]

DELIVER = "webhooks.deliver"

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
            )
        return _state


@app.task(
    name=DELIVER,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    # The longest delivery deadline allowed (150 s), plus the bookkeeping around
    # it. Only a prefork pool enforces these: in the threads pool that webhooks
    # workers run, each attempt's own deadline (deadline.py) is what ends it.
    time_limit=180,
    soft_time_limit=170,
)
def deliver_message(self: Task, message_id: str, tenant: str) -> dict[str, Any]:
    state = _resources()
    outcome = deliver(state["sessions"], state["client"], state["config"], tenant, message_id)
    if "attempt" in outcome and _relay is not None:
        # Its tenant has one delivery fewer in flight: a message the relay held
        # back goes now rather than at its next poll, which would hold a busy
        # tenant to AIA_WEBHOOK_TENANT_MAX_INFLIGHT deliveries a poll
        # (bench/webhook_delivery.py: 14/s instead of 64/s). The relay runs in
        # this process in the threads pool webhooks workers use.
        _relay.poke()
    return outcome


def _send(due: Sequence[tuple[str, str]], traces: Mapping[str, str]) -> None:
    # One producer (one broker connection) for the whole batch, not one each.
    with app.producer_or_acquire() as producer:
        for message_id, tenant in due:
            traced = traces.get(message_id)
            app.send_task(
                DELIVER,
                kwargs={"message_id": message_id, "tenant": tenant},
                queue=Queue.WEBHOOKS.value,
                producer=producer,
                # The delivery's run continues the trace of what caused the message.
                headers={TRACEPARENT: traced} if traced else None,
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
