"""``/v1/tasks``: submit, read, list and cancel."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.body import read_json
from aia_api.http.openapi import (
    CURSOR,
    LIMIT,
    SECURED,
    WITH_BODY,
    Body,
    Reply,
    Tag,
    operation,
)
from aia_api.http.params import page_limit
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply, page_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import services
from aia_api.tasks.openapi import IDEMPOTENCY_KEY, STATUS, TASK_ID, TYPE
from aia_api.tasks.requests import SubmitVariants
from aia_api.tasks.responses import TaskPage, TaskView
from aia_workers.backbone.catalog import CATALOG
from aia_workers.backbone.states import Status

__all__ = ["routes"]

_TASKS = Tag("tasks", "Submit, read, list and cancel tasks.")

_TASK_TYPES = ", ".join(f"`{name}`" for name in sorted(CATALOG))


@operation(
    id="submitTask",
    summary="Submit a task",
    tag=_TASKS,
    permission=Permission.TASKS_SUBMIT,
    responses={
        202: Reply(
            "Accepted and queued (or, on a replayed Idempotency-Key, the first task).",
            TaskView,
            headers=("Location", "Idempotent-Replayed"),
        )
    },
    errors=(*SECURED, *WITH_BODY, "409"),
    description=(
        f"Task types: {_TASK_TYPES}; each has its own payload schema (the request "
        "body is one of `SubmitRequest.<type>`). Needs `tasks:submit`. 403 also "
        "when a priority or a `diagnostics.sleep` is beyond the bound of the "
        "caller's role (`beyond-role-bound`, naming it in `bound`). 409 when the "
        "Idempotency-Key was used with another body; 429 also when the tenant has "
        "too many tasks in flight; 503 when the broker refused the task."
    ),
    parameters=(IDEMPOTENCY_KEY,),
    body=Body(
        "What to run, with what payload, and when.",
        content={"application/json": {"schema": SubmitVariants(CATALOG)}},
    ),
)
async def submit(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, svc.settings.max_body_bytes)
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 255:
        raise Problem(
            400,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            "the Idempotency-Key header must be 1 to 255 characters",
        )
    principal = require(request, Permission.TASKS_SUBMIT)
    submitted = await svc.tasks.submit(principal, body, key)
    view = submitted.view
    if submitted.created:
        svc.metrics.submitted.labels(view["type"], view["queue"]).inc()
    headers = {"Location": view["links"]["self"]}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return json_reply(view, 202, headers)


@operation(
    id="getTask",
    summary="Read a task",
    tag=_TASKS,
    permission=Permission.TASKS_READ,
    responses={200: Reply("The task.", TaskView)},
    errors=(*SECURED, "404"),
    description="Needs `tasks:read`. Tasks of other tenants are 404 too.",
    parameters=(TASK_ID,),
)
async def get_task(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    tenant = require(request, Permission.TASKS_READ).tenant
    view = await services(request).tasks.get(tenant, task_id)
    if view is None:
        raise Problem(404, "task-not-found", "Task not found", f"there is no task {task_id}")
    return json_reply(view)


@operation(
    id="listTasks",
    summary="List tasks",
    tag=_TASKS,
    permission=Permission.TASKS_READ,
    responses={200: Reply("A page of the tenant's recorded tasks, newest first.", TaskPage)},
    errors=(*SECURED, "400", "422"),
    description=(
        "Reads the recorded history (slightly behind the live record). "
        "Needs `tasks:read`. 400 for a cursor this API did not make."
    ),
    parameters=(STATUS, TYPE, LIMIT, CURSOR),
)
async def list_tasks(request: Request) -> Response:
    tenant = require(request, Permission.TASKS_READ).tenant
    params = request.query_params
    statuses = params.getlist("status")
    unknown = [s for s in statuses if s not in Status.__members__.values()]
    if unknown:
        raise Problem(
            422,
            "validation-error",
            "Invalid request",
            f"unknown status {unknown[0]!r}; use one of: {', '.join(s.value for s in Status)}",
            errors=[
                {
                    "loc": ["query", "status"],
                    "pointer": "/query/status",
                    "message": "not a task status",
                    "type": "enum",
                }
            ],
        )
    limit = page_limit(params)
    items, cursor = await services(request).tasks.list(
        tenant,
        statuses=statuses,
        types=params.getlist("type"),
        limit=limit,
        cursor=params.get("cursor") or None,
    )
    return page_reply(request, items, cursor)


@operation(
    id="cancelTask",
    summary="Cancel a task",
    tag=_TASKS,
    permission=Permission.TASKS_CANCEL,
    responses={202: Reply("Cancelled; a running body is stopped.", TaskView)},
    errors=(*SECURED, "404", "409"),
    description=(
        "Needs `tasks:cancel`. 409 when the task has already finished. A queued task never "
        "starts; a running one is stopped at once, but for an `agents.run`, which stops at "
        "its next checkpoint (between two steps of the agent): either way it ends `cancelled`."
    ),
    parameters=(TASK_ID,),
)
async def cancel(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    tenant = require(request, Permission.TASKS_CANCEL).tenant
    view = await services(request).tasks.cancel(tenant, task_id)
    return json_reply(view, 202)


routes = [
    Route("/v1/tasks", submit, methods=["POST"]),
    Route("/v1/tasks", list_tasks, methods=["GET"]),
    Route("/v1/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/v1/tasks/{task_id}/cancel", cancel, methods=["POST"]),
]
