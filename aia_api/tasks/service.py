"""Submitting, reading and cancelling tasks on behalf of one tenant.

Redis holds the live record of every task, so submit, status and cancel cost
a round trip or two and never wait on the database; listing reads the history
that the recorder writes to the database from the event stream.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import redis.asyncio as aioredis
from celery import Celery
from opentelemetry.trace import Span, SpanKind, Tracer
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from aia_api.http.problems import Problem, field_errors
from aia_api.identity.authenticator import Principal
from aia_api.tasks.batching import ScriptBatcher
from aia_api.tasks.requests import SubmitRequest
from aia_api.tasks.rolebounds import check_role_bounds
from aia_workers.backbone.broker import (
    broker_priority,
    celery_message,
    redis_queue_key,
    sent_event,
    sent_event_channel,
)
from aia_workers.backbone.catalog import TaskType, get_task_type
from aia_workers.backbone.events import (
    StreamLimits,
    TransitionOutcome,
    dumps,
    submit_call,
    transition_args,
)
from aia_workers.backbone.history import TaskRepository
from aia_workers.backbone.keys import idempotency_key, task_key
from aia_workers.backbone.scripts import SUBMIT_LUA, TRACEPARENT_FIELD, TRANSITION_LUA
from aia_workers.backbone.states import TERMINAL, Event, Status
from aia_workers.backbone.view import iso_time, task_view, view_from_hash, view_from_record
from aia_workers.errors import UnknownTaskTypeError
from aia_workers.settings import Settings
from aia_workers.tracing.context import TRACEPARENT, current_traceparent, traceparent

__all__ = ["Submitted", "TaskService"]


@dataclass(frozen=True, slots=True)
class Submitted:
    view: dict[str, Any]
    created: bool


@dataclass(frozen=True, slots=True)
class _Order:
    """A valid, permitted submit: the new task as the submit script records it."""

    task_id: str
    tenant: str
    type_name: str
    queue: str
    payload: dict[str, Any]
    priority: int | None
    eta: datetime | None
    now: float  # unix seconds
    fingerprint: str  # what an Idempotency-Key's later requests must match

    @classmethod
    def of(
        cls, tenant: str, request: SubmitRequest, task_type: TaskType, payload: dict[str, Any]
    ) -> _Order:
        now = time.time()
        fingerprint = hashlib.sha256(
            dumps([request.type, payload, request.countdown, request.priority]).encode()
        ).hexdigest()
        eta = (
            datetime.fromtimestamp(now, UTC) + timedelta(seconds=request.countdown)
            if request.countdown
            else None
        )
        return cls(
            task_id=str(uuid.uuid4()),
            tenant=tenant,
            type_name=task_type.name,
            queue=task_type.queue.value,
            payload=payload,
            priority=request.priority,
            eta=eta,
            now=now,
            fingerprint=fingerprint,
        )

    @property
    def kwargs(self) -> dict[str, Any]:
        """The Celery task's keyword arguments."""
        return {"payload": self.payload, "tenant": self.tenant}

    @property
    def eta_iso(self) -> str | None:
        return self.eta.isoformat() if self.eta else None

    def view(self) -> dict[str, Any]:
        """The task's view as the submit script recorded it."""
        created = iso_time(self.now)
        return task_view(
            task_id=self.task_id,
            type_name=self.type_name,
            queue=self.queue,
            status=Status.QUEUED.value,
            seq=1,
            attempts=0,
            progress=None,
            payload=self.payload,
            result=None,
            error=None,
            priority=self.priority,
            eta=self.eta_iso,
            created_at=created,
            started_at=None,
            finished_at=None,
            updated_at=created,
        )


# Through another broker, the submit script only records the task.
_NO_ENVELOPE = {"broker_key": "", "broker_message": "", "sent_message": ""}


class TaskService:
    """Task operations; every method takes the caller's tenant and stays inside it."""

    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        sessions: sessionmaker[Session],
        celery: Celery,
        *,
        tracer: Tracer | None = None,
    ) -> None:
        self._settings = settings
        self._tracer = tracer
        self._redis = client
        self._sessions = sessions
        self._celery = celery
        self._limits = StreamLimits.from_settings(settings)
        self._submit = ScriptBatcher(client, SUBMIT_LUA)
        self._transition = client.register_script(TRANSITION_LUA)
        # On a Redis broker that is also the event store, the Celery message is
        # pushed inside the same Lua call that records the task.
        self._direct = settings.broker_is_redis and settings.broker_url == settings.redis_url
        db = client.connection_pool.connection_kwargs.get("db", 0)
        self._sent_channel = sent_event_channel(int(db or 0))

    # -- submit ---------------------------------------------------------------

    def validate(self, body: Any) -> tuple[SubmitRequest, TaskType, dict[str, Any]]:
        """The request, its task type and its normalised payload, or a 422 Problem."""
        try:
            request = SubmitRequest.model_validate(body)
        except ValidationError as exc:
            raise _invalid(field_errors(exc)) from None
        try:
            task_type = get_task_type(request.type)
        except UnknownTaskTypeError as exc:
            raise _invalid(
                [{"loc": ["type"], "pointer": "/type", "message": str(exc), "type": "unknown_type"}]
            ) from None
        try:
            payload = task_type.payload.model_validate(request.payload).model_dump(mode="json")
        except ValidationError as exc:
            raise _invalid(field_errors(exc, ("payload",))) from None
        limit = self._settings.max_countdown_seconds
        if request.countdown is not None and request.countdown > limit:
            raise _invalid(
                [
                    {
                        "loc": ["countdown"],
                        "pointer": "/countdown",
                        "message": f"countdown must be at most {limit} seconds",
                        "type": "less_than_equal",
                    }
                ]
            )
        return request, task_type, payload

    async def submit(
        self, principal: Principal, body: Any, idempotency: str | None = None
    ) -> Submitted:
        """Record and enqueue the task ``body`` asks for, or answer the one its
        Idempotency-Key already made; a Problem when it may not run."""
        request, task_type, payload = self.validate(body)
        self._authorize(principal, request, task_type, payload)
        order = _Order.of(principal.tenant, request, task_type, payload)
        if self._tracer is None:
            kind, ident = await self._enqueue(order, task_type, idempotency, None)
        else:
            # The task's run continues this span: its traceparent rides in the message.
            with self._tracer.start_as_current_span(
                f"enqueue {order.type_name}",
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "celery",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": order.queue,
                    "messaging.message.id": order.task_id,
                    "aia.task.type": order.type_name,
                    "aia.tenant": order.tenant,
                },
            ) as span:
                kind, ident = await self._enqueue(order, task_type, idempotency, span)
                span.set_attribute("aia.submit.outcome", kind)
        if kind == "replay":
            return await self._replayed(order.tenant, ident)
        if kind != "created":
            raise self._refused(kind, ident)
        return Submitted(order.view(), created=True)

    async def _enqueue(
        self, order: _Order, task_type: TaskType, idempotency: str | None, span: Span | None
    ) -> tuple[str, str]:
        """Record the task, and send its message unless the submit script pushed it."""
        traced = traceparent(span) if span is not None else None
        kind, ident = await self._record(order, idempotency, traced)
        if kind == "created" and not self._direct:
            await self._enqueue_elsewhere(
                order.task_id, task_type, order.kwargs, order.priority, order.eta, traced
            )
        return kind, ident

    def _authorize(
        self,
        principal: Principal,
        request: SubmitRequest,
        task_type: TaskType,
        payload: dict[str, Any],
    ) -> None:
        """A 403 Problem unless the principal's role may submit this task, within its bounds."""
        if not principal.can(task_type.permission):
            raise Problem(
                403,
                "forbidden",
                "Forbidden",
                f"{task_type.name} needs the {task_type.permission} permission, which the "
                f"{principal.role} role does not have",
                permission=task_type.permission,
            )
        check_role_bounds(principal, request, task_type, payload, self._settings)

    async def _record(
        self, order: _Order, idempotency: str | None, traced: str | None
    ) -> tuple[str, str]:
        """Run the submit script (batched with other submits): its outcome and task id."""
        call = submit_call(
            task_id=order.task_id,
            tenant=order.tenant,
            type_name=order.type_name,
            queue=order.queue,
            now=order.now,
            limits=self._limits,
            payload_json=dumps(order.payload),
            fingerprint=order.fingerprint,
            idempotency_key=(
                idempotency_key(order.tenant, hashlib.sha256(idempotency.encode()).hexdigest())
                if idempotency
                else None
            ),
            priority=order.priority,
            eta=order.eta_iso,
            sent_channel=self._sent_channel,
            max_inflight=self._settings.tenant_max_inflight,
            **(self._envelope(order, traced) if self._direct else _NO_ENVELOPE),
        )
        keys, args = call.keys_and_args()
        kind, ident = (_text(v) for v in await self._submit(keys=keys, args=args))
        return kind, ident

    def _envelope(self, order: _Order, traced: str | None) -> dict[str, str]:
        """The Celery message the submit script LPUSHes onto the Redis broker, the list it
        goes to, and the ``task-sent`` event monitors see."""
        prio = broker_priority(order.priority, redis=True)
        task_id, name, kwargs, queue = order.task_id, order.type_name, order.kwargs, order.queue
        return {
            "broker_key": redis_queue_key(queue, prio),
            "broker_message": celery_message(
                task_id=task_id,
                name=name,
                kwargs=kwargs,
                queue=queue,
                eta=order.eta,
                broker_prio=prio,
                traceparent=traced,
            ),
            "sent_message": sent_event(
                task_id=task_id,
                name=name,
                kwargs=kwargs,
                queue=queue,
                eta=order.eta,
                timestamp=order.now,
            ),
        }

    async def _replayed(self, tenant: str, task_id: str) -> Submitted:
        """The task an Idempotency-Key made before, or a 409 once it is gone."""
        view = await self.get(tenant, task_id)
        if view is None:
            raise Problem(
                409,
                "idempotency-key-reused",
                "Idempotency key reused",
                "this Idempotency-Key belongs to a task that no longer exists; use a new key",
            )
        return Submitted(view, created=False)

    def _refused(self, kind: str, ident: str) -> Problem:
        """The Problem for a submit the script refused: ``busy`` or ``conflict``."""
        if kind == "busy":
            return Problem(
                429,
                "too-many-tasks-in-flight",
                "Too many tasks in flight",
                f"your tenant has {ident} tasks queued or running, the most allowed at once "
                f"({self._settings.tenant_max_inflight}); wait for some to finish",
                headers={"Retry-After": str(self._settings.retry_after_seconds)},
            )
        if kind == "conflict":
            return Problem(
                409,
                "idempotency-key-reused",
                "Idempotency key reused",
                "this Idempotency-Key was used with a different request body; "
                "use a new key for a new request",
                task_id=ident,
            )
        raise ValueError(f"unexpected reply from the submit script: {kind!r}")

    async def _enqueue_elsewhere(
        self,
        task_id: str,
        task_type: TaskType,
        kwargs: dict[str, Any],
        priority: int | None,
        eta: datetime | None,
        traced: str | None,
    ) -> None:
        # kombu's publish blocks; it runs on a worker thread, off the event loop.
        options: dict[str, Any] = {
            "task_id": task_id,
            "kwargs": kwargs,
            "queue": task_type.queue.value,
            "eta": eta,
            "priority": broker_priority(priority, redis=self._settings.broker_is_redis),
            "retry": False,
        }
        if traced is not None:
            options["headers"] = {TRACEPARENT: traced}
        try:
            await anyio.to_thread.run_sync(
                lambda: self._celery.send_task(task_type.name, **options)
            )
        except Exception as exc:
            error = {"type": "EnqueueError", "message": f"the broker refused the task: {exc}"}
            await self._move(
                task_id, Event.FAILED, data={"error": error}, fields={"error": dumps(error)}
            )
            raise Problem(
                503,
                "broker-unavailable",
                "Broker unavailable",
                "the task could not be handed to the broker; it was marked failed. Try again.",
                headers={"Retry-After": str(self._settings.retry_after_seconds)},
                task_id=task_id,
            ) from exc

    # -- read -----------------------------------------------------------------

    async def get(self, tenant: str, task_id: str) -> dict[str, Any] | None:
        """The task as the caller's tenant sees it, or None (also for other tenants' tasks)."""
        live: dict[str, str] = await self._redis.hgetall(task_key(task_id))  # type: ignore[assignment]
        if live:
            return view_from_hash(live) if live.get("tenant") == tenant else None
        return await anyio.to_thread.run_sync(self._get_recorded, tenant, task_id)

    def _get_recorded(self, tenant: str, task_id: str) -> dict[str, Any] | None:
        with self._sessions() as session:
            record = TaskRepository(session, tenant).get(task_id)
            return view_from_record(record) if record else None

    async def list(
        self,
        tenant: str,
        *,
        statuses: Sequence[str],
        types: Sequence[str],
        limit: int,
        cursor: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        def query() -> tuple[list[dict[str, Any]], str | None]:
            with self._sessions() as session:
                page = TaskRepository(session, tenant).list(
                    statuses=statuses, types=types, limit=limit, cursor=cursor
                )
                return [view_from_record(r) for r in page.items], page.next_cursor

        return await anyio.to_thread.run_sync(query)

    # -- cancel ---------------------------------------------------------------

    async def cancel(self, tenant: str, task_id: str) -> dict[str, Any]:
        view = await self.get(tenant, task_id)
        if view is None:
            raise _not_found(task_id)
        if view["status"] in TERMINAL:
            raise _already_finished(task_id, view["status"])
        traced = current_traceparent()
        outcome = await self._move(
            task_id,
            Event.CANCELLED,
            data={"reason": "cancelled by request"},
            # The request's span, while tracing is on: the webhooks it causes join its trace.
            fields={TRACEPARENT_FIELD: traced} if traced else None,
        )
        if outcome.outcome == "terminal":
            raise _already_finished(task_id, outcome.status or "finished")
        # Revoking tells workers to drop the message or stop the running body;
        # a body that stops itself at its next checkpoint is left to do so,
        # rather than killed halfway through a step.
        terminate = not _stops_at_checkpoints(view["type"])
        await anyio.to_thread.run_sync(
            lambda: self._celery.control.revoke(task_id, terminate=terminate, signal="SIGTERM")
        )
        return await self.get(tenant, task_id) or view

    async def _move(
        self,
        task_id: str,
        event: Event,
        *,
        data: dict[str, Any] | None = None,
        fields: dict[str, str] | None = None,
    ) -> TransitionOutcome:
        keys, args = transition_args(
            task_id=task_id,
            event=event,
            now=time.time(),
            limits=self._limits,
            data=data,
            fields=fields,
        )
        return TransitionOutcome.from_reply(await self._transition(keys=keys, args=args))


def _stops_at_checkpoints(type_name: str) -> bool:
    try:
        return get_task_type(type_name).stops_at_checkpoints
    except UnknownTaskTypeError:
        return False


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _invalid(errors: list[dict[str, Any]]) -> Problem:
    return Problem(
        422,
        "validation-error",
        "Invalid request",
        "the request does not match the schema; see errors for each field",
        errors=errors,
    )


def _not_found(task_id: str) -> Problem:
    return Problem(404, "task-not-found", "Task not found", f"there is no task {task_id}")


def _already_finished(task_id: str, status: str) -> Problem:
    return Problem(
        409,
        "task-finished",
        "Task already finished",
        f"task {task_id} is already {status} and cannot be cancelled",
        task_status=status,
    )
