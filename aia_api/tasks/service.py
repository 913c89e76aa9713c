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
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from aia_api.http.problems import Problem, field_errors
from aia_api.identity.authenticator import Principal
from aia_api.tasks.batching import ScriptBatcher
from aia_api.tasks.requests import SubmitRequest
from aia_api.tasks.rolebounds import check_role_bounds
from aia_api.tasks.views import links, view_from_hash, view_from_record
from aia_workers.backbone.broker import (
    broker_priority,
    celery_message,
    redis_queue_key,
    sent_event,
    sent_event_channel,
)
from aia_workers.backbone.catalog import TaskType, get_task_type
from aia_workers.backbone.events import (
    SUBMIT_LUA,
    TRANSITION_LUA,
    StreamLimits,
    TransitionOutcome,
    dumps,
    idempotency_key,
    submit_args,
    task_key,
    transition_args,
)
from aia_workers.backbone.history import TaskRepository
from aia_workers.backbone.states import TERMINAL, Event
from aia_workers.errors import UnknownTaskTypeError
from aia_workers.settings import Settings

__all__ = ["Submitted", "TaskService"]


@dataclass(frozen=True, slots=True)
class Submitted:
    view: dict[str, Any]
    created: bool


class TaskService:
    """Task operations; every method takes the caller's tenant and stays inside it."""

    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        sessions: sessionmaker[Session],
        celery: Celery,
    ) -> None:
        self._settings = settings
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
        request, task_type, payload = self.validate(body)
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
        tenant = principal.tenant
        task_id = str(uuid.uuid4())
        now = time.time()
        payload_json = dumps(payload)
        fingerprint = hashlib.sha256(
            dumps([request.type, payload, request.countdown, request.priority]).encode()
        ).hexdigest()
        eta = (
            datetime.fromtimestamp(now, UTC) + timedelta(seconds=request.countdown)
            if request.countdown
            else None
        )
        queue = task_type.queue.value
        kwargs = {"payload": payload, "tenant": tenant}
        broker_key = message = sent = ""
        if self._direct:
            prio = broker_priority(request.priority, redis=True)
            broker_key = redis_queue_key(queue, prio)
            message = celery_message(
                task_id=task_id,
                name=task_type.name,
                kwargs=kwargs,
                queue=queue,
                eta=eta,
                broker_prio=prio,
            )
            sent = sent_event(
                task_id=task_id,
                name=task_type.name,
                kwargs=kwargs,
                queue=queue,
                eta=eta,
                timestamp=now,
            )
        idem = (
            idempotency_key(tenant, hashlib.sha256(idempotency.encode()).hexdigest())
            if idempotency
            else None
        )
        keys, args = submit_args(
            task_id=task_id,
            tenant=tenant,
            type_name=task_type.name,
            queue=queue,
            now=now,
            limits=self._limits,
            payload_json=payload_json,
            fingerprint=fingerprint,
            idempotency_key=idem,
            broker_key=broker_key,
            broker_message=message,
            priority=request.priority,
            eta=eta.isoformat() if eta else None,
            sent_channel=self._sent_channel,
            sent_message=sent,
            max_inflight=self._settings.tenant_max_inflight,
        )
        kind, ident = (_text(v) for v in await self._submit(keys=keys, args=args))
        if kind == "busy":
            raise Problem(
                429,
                "too-many-tasks-in-flight",
                "Too many tasks in flight",
                f"your tenant has {ident} tasks queued or running, the most allowed at once "
                f"({self._settings.tenant_max_inflight}); wait for some to finish",
                headers={"Retry-After": str(self._settings.retry_after_seconds)},
            )
        if kind == "conflict":
            raise Problem(
                409,
                "idempotency-key-reused",
                "Idempotency key reused",
                "this Idempotency-Key was used with a different request body; "
                "use a new key for a new request",
                task_id=ident,
            )
        if kind == "replay":
            view = await self.get(tenant, ident)
            if view is None:
                raise Problem(
                    409,
                    "idempotency-key-reused",
                    "Idempotency key reused",
                    "this Idempotency-Key belongs to a task that no longer exists; use a new key",
                )
            return Submitted(view, created=False)
        if not self._direct:
            await self._enqueue_elsewhere(task_id, task_type, kwargs, request.priority, eta)
        created = datetime.fromtimestamp(now, UTC).isoformat()
        view = {
            "id": task_id,
            "type": task_type.name,
            "queue": queue,
            "status": "queued",
            "seq": 1,
            "attempts": 0,
            "progress": None,
            "payload": payload,
            "result": None,
            "error": None,
            "priority": request.priority,
            "eta": eta.isoformat() if eta else None,
            "created_at": created,
            "started_at": None,
            "finished_at": None,
            "updated_at": created,
            "links": links(task_id),
        }
        return Submitted(view, created=True)

    async def _enqueue_elsewhere(
        self,
        task_id: str,
        task_type: TaskType,
        kwargs: dict[str, Any],
        priority: int | None,
        eta: datetime | None,
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
        outcome = await self._move(
            task_id, Event.CANCELLED, data={"reason": "cancelled by request"}
        )
        if outcome.outcome == "terminal":
            raise _already_finished(task_id, outcome.status or "finished")
        # Revoking tells workers to drop the message or stop the running body.
        await anyio.to_thread.run_sync(
            lambda: self._celery.control.revoke(task_id, terminate=True, signal="SIGTERM")
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
