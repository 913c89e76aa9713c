"""``/v1/schedules``: create, list, read, change and delete a tenant's schedules.

Beat (``aia_workers.scheduling``) polls the table every
``AIA_BEAT_POLL_SECONDS``, so a change here is followed within seconds, with no
restart. System schedules (``schedules/system.py``) belong to no tenant and are
not shown here: they are part of the deployment, listed in its code.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import sqlalchemy.exc
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.body import parse_model, read_json
from aia_api.http.openapi import CURSOR, LIMIT, SECURED, WITH_BODY, Body, Reply, operation
from aia_api.http.params import page_limit
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply, page_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.schedules.checks import check_cadence, check_task
from aia_api.schedules.openapi import NEEDS_READ, NEEDS_WRITE, SCHEDULE_ID, SCHEDULES
from aia_api.schedules.requests import SchedulePatch, ScheduleRequest
from aia_api.schedules.responses import SchedulePage, ScheduleView
from aia_api.schedules.views import schedule_view
from aia_api.services import Services, services
from aia_api.webhooks.audit import changes, record_change
from aia_workers.db.cursors import keyset_page
from aia_workers.db.schedules import Schedule

__all__ = ["routes"]

_TIMING = (
    " A cron expression is read in `timezone` (IANA); across a DST change a time the "
    "change skips runs just after it and a time it repeats runs once. An interval's "
    "first run is one interval after it is set."
)


def _load(session: Session, tenant: str, schedule_id: str) -> Schedule:
    row = session.scalars(
        select(Schedule).where(Schedule.id == schedule_id, Schedule.tenant_id == tenant)
    ).one_or_none()
    if row is None:
        raise Problem(
            404, "schedule-not-found", "Schedule not found", f"there is no schedule {schedule_id}"
        )
    return row


def _name_taken(name: str) -> Problem:
    return Problem(
        409,
        "schedule-name-taken",
        "Schedule name taken",
        f"the tenant has a schedule named {name!r} already; pick another name",
        errors=[
            {"loc": ["name"], "pointer": "/name", "message": "already taken", "type": "unique"}
        ],
    )


def _flush(session: Session, name: str) -> None:
    try:
        session.flush()
    except sqlalchemy.exc.IntegrityError:
        raise _name_taken(name) from None


def _snapshot(row: Schedule) -> dict[str, Any]:
    """The audited fields of ``row`` as they are now."""
    return {
        "name": row.name,
        "type": row.task,
        "payload": row.payload,
        "cron": row.cron,
        "timezone": row.timezone,
        "interval_seconds": row.interval_seconds,
        "enabled": row.enabled,
    }


async def _views(svc: Services, tenant: str, rows: list[Schedule]) -> list[dict[str, Any]]:
    """Each row's view, with its last run's status read from the task's record."""
    tasks = await asyncio.gather(
        *(svc.tasks.get(tenant, row.last_task_id) if row.last_task_id else _none() for row in rows)
    )
    return [schedule_view(row, task) for row, task in zip(rows, tasks, strict=True)]


async def _none() -> None:
    return None


@operation(
    id="createSchedule",
    summary="Schedule a catalog task",
    tag=SCHEDULES,
    permission=Permission.SCHEDULES_WRITE,
    responses={201: Reply("Created.", ScheduleView, headers=("Location",))},
    errors=(*SECURED, *WITH_BODY, "409"),
    description=(
        f"{NEEDS_WRITE} Give exactly one of `cron` (with `timezone`) or `interval_seconds`; "
        "the payload is validated as the type's submit would be (422 naming the field), "
        "and each run is submitted as the caller could submit it (role bounds apply)."
        f"{_TIMING} 409 `schedule-name-taken` for a name the tenant uses. "
        "Audited as `schedule.create`."
    ),
    body=Body("What to run and when.", ScheduleRequest),
)
async def create_schedule(request: Request) -> Response:
    principal = require(request, Permission.SCHEDULES_WRITE)
    svc = services(request)
    body = parse_model(ScheduleRequest, await read_json(request, svc.settings.max_body_bytes))
    cadence = check_cadence(body.cron, body.timezone, body.interval_seconds, svc.settings)
    task_type, payload = check_task(principal, body.type, body.payload, svc.settings)
    now = datetime.now(UTC)
    row = Schedule(
        id=str(uuid.uuid4()),
        tenant_id=principal.tenant,
        name=body.name,
        task=task_type.name,
        payload=payload,
        cron=cadence.cron,
        timezone=body.timezone,
        interval_seconds=cadence.interval_seconds,
        enabled=body.enabled,
        created_by=principal.actor,
        created_at=now,
        updated_at=now,
        next_run_at=cadence.first_slot(now) if body.enabled else None,
    )

    def store() -> None:
        with svc.sessions.begin() as session:
            session.add(row)
            _flush(session, body.name)
            record_change(
                session,
                request,
                "schedule.create",
                tenant=principal.tenant,
                actor=principal.actor,
                detail={"schedule_id": row.id, **_snapshot(row)},
            )

    await anyio.to_thread.run_sync(store)
    view = schedule_view(row, None)
    return json_reply(view, 201, {"Location": view["links"]["self"]})


@operation(
    id="listSchedules",
    summary="List schedules",
    tag=SCHEDULES,
    permission=Permission.SCHEDULES_READ,
    responses={200: Reply("Newest first; follow links.next for more.", SchedulePage)},
    errors=(*SECURED, "400", "422"),
    description=f"{NEEDS_READ} Each with its next run and its last run's task and status.",
    parameters=(LIMIT, CURSOR),
)
async def list_schedules(request: Request) -> Response:
    principal = require(request, Permission.SCHEDULES_READ)
    svc = services(request)
    limit = page_limit(request.query_params)
    cursor = request.query_params.get("cursor") or None

    def load() -> tuple[list[Schedule], str | None]:
        with svc.sessions() as session:
            return keyset_page(
                session,
                select(Schedule).where(Schedule.tenant_id == principal.tenant),
                Schedule.created_at,
                Schedule.id,
                limit=limit,
                cursor=cursor,
            )

    rows, next_cursor = await anyio.to_thread.run_sync(load)
    return page_reply(request, await _views(svc, principal.tenant, rows), next_cursor)


@operation(
    id="getSchedule",
    summary="A schedule, its next run and its last run",
    tag=SCHEDULES,
    permission=Permission.SCHEDULES_READ,
    responses={200: Reply("The schedule.", ScheduleView)},
    errors=(*SECURED, "404"),
    description=f"{NEEDS_READ} The last run's `status` is its task's, read from the task record.",
    parameters=(SCHEDULE_ID,),
)
async def get_schedule(request: Request) -> Response:
    principal = require(request, Permission.SCHEDULES_READ)
    svc = services(request)
    schedule_id = request.path_params["schedule_id"]

    def load() -> Schedule:
        with svc.sessions() as session:
            return _load(session, principal.tenant, schedule_id)

    row = await anyio.to_thread.run_sync(load)
    return json_reply((await _views(svc, principal.tenant, [row]))[0])


@operation(
    id="updateSchedule",
    summary="Change a schedule: name, cron/timezone/interval, payload, enabled",
    tag=SCHEDULES,
    permission=Permission.SCHEDULES_WRITE,
    responses={200: Reply("Changed.", ScheduleView)},
    errors=(*SECURED, *WITH_BODY, "404", "409"),
    description=(
        f"{NEEDS_WRITE} Setting `cron` drops the interval and setting `interval_seconds` "
        "drops the cron expression. A new timing, or enabling it again, starts from now: "
        "the next run is the first slot after the change; disabling clears the next run."
        f"{_TIMING} Audited as `schedule.update`, with each changed field."
    ),
    parameters=(SCHEDULE_ID,),
    body=Body("The fields to change.", SchedulePatch),
)
async def update_schedule(request: Request) -> Response:
    principal = require(request, Permission.SCHEDULES_WRITE)
    svc = services(request)
    body = parse_model(SchedulePatch, await read_json(request, svc.settings.max_body_bytes))
    given = body.model_fields_set
    schedule_id = request.path_params["schedule_id"]

    def change() -> Schedule:
        now = datetime.now(UTC)
        with svc.sessions.begin() as session:
            row = _load(session, principal.tenant, schedule_id)
            before = _snapshot(row)
            cron, interval = row.cron, row.interval_seconds
            if "cron" in given:
                cron = body.cron
                if cron is not None and "interval_seconds" not in given:
                    interval = None
            if "interval_seconds" in given:
                interval = body.interval_seconds
                if interval is not None and "cron" not in given:
                    cron = None
            zone = body.timezone or row.timezone
            cadence = check_cadence(cron, zone, interval, svc.settings)
            payload = body.payload if body.payload is not None else row.payload
            # Checked again on every change: the caller must be able to run what it keeps.
            _, row.payload = check_task(principal, row.task, payload, svc.settings)
            retimed = (cadence.cron, zone, cadence.interval_seconds) != (
                row.cron,
                row.timezone,
                row.interval_seconds,
            )
            row.cron, row.timezone, row.interval_seconds = cron, zone, interval
            enabled = row.enabled if body.enabled is None else body.enabled
            if not enabled:
                row.next_run_at = None
            elif retimed or not row.enabled:
                row.next_run_at = cadence.first_slot(now)
            if enabled and not row.enabled:
                # A slot left waiting when it was disabled is dropped, not run late.
                row.pending_slot_at = row.pending_until = None
            row.enabled = enabled
            if body.name is not None:
                row.name = body.name
            row.updated_at = now
            _flush(session, row.name)
            record_change(
                session,
                request,
                "schedule.update",
                tenant=principal.tenant,
                actor=principal.actor,
                detail={"schedule_id": row.id, "changes": changes(before, _snapshot(row))},
            )
            return row

    row = await anyio.to_thread.run_sync(change)
    return json_reply((await _views(svc, principal.tenant, [row]))[0])


@operation(
    id="deleteSchedule",
    summary="Delete a schedule",
    tag=SCHEDULES,
    permission=Permission.SCHEDULES_WRITE,
    responses={204: Reply("Deleted; tasks it started are kept.")},
    errors=(*SECURED, "404"),
    description="Needs `schedules:write`. Audited as `schedule.delete`.",
    parameters=(SCHEDULE_ID,),
)
async def delete_schedule(request: Request) -> Response:
    principal = require(request, Permission.SCHEDULES_WRITE)
    svc = services(request)
    schedule_id = request.path_params["schedule_id"]

    def remove() -> None:
        with svc.sessions.begin() as session:
            row = _load(session, principal.tenant, schedule_id)
            gone = _snapshot(row)
            session.delete(row)
            record_change(
                session,
                request,
                "schedule.delete",
                tenant=principal.tenant,
                actor=principal.actor,
                detail={"schedule_id": schedule_id, **gone},
            )

    await anyio.to_thread.run_sync(remove)
    return Response(status_code=204)


_ONE = "/v1/schedules/{schedule_id}"
routes = [
    Route("/v1/schedules", create_schedule, methods=["POST"]),
    Route("/v1/schedules", list_schedules, methods=["GET"]),
    Route(_ONE, get_schedule, methods=["GET"]),
    Route(_ONE, update_schedule, methods=["PATCH"]),
    Route(_ONE, delete_schedule, methods=["DELETE"]),
]
