"""``/v1/dead-letters``: tasks quarantined for losing their worker too often.

A task whose worker process dies every time it runs (killed, crashed, out of
memory) is failed and filed here by the script that records its starts
(aia_workers/backbone/events.py). Operators read these, replay one as a new task
through the normal submit path, or discard it.

Permissions: reading is ``tasks:read``, like reading tasks. A replay is a
submit, so it needs ``tasks:submit`` and, through the submit path, the task
type's own permission and a place under the tenant's in-flight cap. Discarding
drops work that would otherwise still be done, as a cancel does, so it needs
``tasks:cancel``. Both are the operator's: no new permission is needed.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import redis.asyncio as aioredis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aia_api.http.openapi import CURSOR, LIMIT, SECURED, Reply, Tag, operation
from aia_api.http.params import page_limit
from aia_api.http.problems import Problem
from aia_api.http.replies import json_reply, page_reply
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_api.services import services
from aia_api.tasks.openapi import TASK_ID
from aia_api.tasks.responses import DeadLetterPage, DeadLetterView, TaskView
from aia_workers.backbone.events import DeadLetter
from aia_workers.backbone.keys import dead_letter_entries_key, dead_letters_key, task_key
from aia_workers.backbone.view import iso_time
from aia_workers.db.cursors import InvalidCursorError

__all__ = ["DeadLetters", "routes"]

_DEAD_LETTERS = Tag(
    "dead-letters",
    "Tasks quarantined because their worker process kept dying: read, replay or discard them.",
)

_ABOUT = (
    "A task whose worker process is lost `AIA_POISON_MAX_LOSSES` times (killed, crashed or "
    "out of memory; 3 by default) is failed with a `WorkerLost` error and kept here, with "
    "its payload, instead of being redelivered forever."
)


class DeadLetters:
    """One tenant's dead letters, as the transition script files them in Redis."""

    def __init__(self, client: aioredis.Redis, tenant: str) -> None:
        self._redis = client
        self._index = dead_letters_key(tenant)
        self._entries = dead_letter_entries_key(tenant)

    async def get(self, task_id: str) -> DeadLetter | None:
        raw = await self._redis.hget(self._entries, task_id)
        return DeadLetter.from_json(raw) if raw else None

    async def page(self, *, limit: int, cursor: str | None) -> tuple[list[DeadLetter], str | None]:
        """Up to ``limit`` dead letters, newest first, after ``cursor``; the next cursor."""
        newest = "+inf"
        # (task id, time filed); the API's client decodes replies, so ids are str.
        found: list[tuple[str, float]] = []
        if cursor is not None:
            score, last_id = _decode_cursor(cursor)
            # Those filed at the cursor's very time come first, after its id in
            # the index's own order (the id, descending), then all older ones.
            ties: list[tuple[str, float]] = await self._redis.zrange(
                self._index, repr(score), repr(score), desc=True, byscore=True, withscores=True
            )  # type: ignore[assignment]
            found = [(i, s) for i, s in ties if i < last_id]
            newest = f"({score!r}"
        older: list[tuple[str, float]] = await self._redis.zrange(
            self._index,
            newest,
            "-inf",
            desc=True,
            byscore=True,
            offset=0,
            num=limit + 1,
            withscores=True,
        )  # type: ignore[assignment]
        found = [*found, *older]
        page, more = found[:limit], len(found) > limit
        if not page:
            return [], None
        raws = await self._redis.hmget(self._entries, [task_id for task_id, _ in page])
        # An entry replayed or discarded between the two reads is simply left out.
        letters = [DeadLetter.from_json(raw) for raw in raws if raw]
        end_id, end_score = page[-1]
        return letters, _encode_cursor(end_score, end_id) if more else None

    async def remove(self, task_id: str, *, replayed_as: str | None = None) -> bool:
        """Drop the entry; False when it was not there. Notes a replay on the new task."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(self._index, task_id)
        pipe.hdel(self._entries, task_id)
        if replayed_as is not None:
            pipe.hset(task_key(replayed_as), "replay_of", task_id)
        found = await pipe.execute()
        return bool(found[1])


def _encode_cursor(score: float, task_id: str) -> str:
    raw = json.dumps([score, task_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, task_id = json.loads(raw)
        if not isinstance(score, int | float) or isinstance(score, bool):
            raise ValueError("not a time")
        if not isinstance(task_id, str):
            raise ValueError("not an id")
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidCursorError(
            "the cursor is not one this API returned; start again without it"
        ) from exc
    return float(score), task_id


def _view(letter: DeadLetter) -> dict[str, Any]:
    path = f"/v1/dead-letters/{letter.id}"
    return {
        "id": letter.id,
        "type": letter.type,
        "queue": letter.queue,
        "payload": letter.payload,
        "reason": letter.reason,
        "losses": letter.losses,
        "attempts": letter.attempts,
        "replay_of": letter.replay_of,
        "created_at": iso_time(letter.created_at),
        "dead_lettered_at": iso_time(letter.dead_lettered_at),
        "links": {"self": path, "task": f"/v1/tasks/{letter.id}", "replay": f"{path}/replay"},
    }


def _not_found(task_id: str) -> Problem:
    return Problem(
        404, "dead-letter-not-found", "Dead letter not found", f"there is no dead letter {task_id}"
    )


@operation(
    id="listDeadLetters",
    summary="List dead letters",
    tag=_DEAD_LETTERS,
    permission=Permission.TASKS_READ,
    responses={200: Reply("Newest first; follow links.next for more.", DeadLetterPage)},
    errors=(*SECURED, "400", "422"),
    description=f"{_ABOUT} Needs `tasks:read`. 400 for a cursor this API did not make.",
    parameters=(LIMIT, CURSOR),
)
async def list_dead_letters(request: Request) -> Response:
    tenant = require(request, Permission.TASKS_READ).tenant
    limit = page_limit(request.query_params)
    letters, cursor = await DeadLetters(services(request).redis, tenant).page(
        limit=limit, cursor=request.query_params.get("cursor") or None
    )
    return page_reply(request, [_view(letter) for letter in letters], cursor)


@operation(
    id="getDeadLetter",
    summary="Read a dead letter",
    tag=_DEAD_LETTERS,
    permission=Permission.TASKS_READ,
    responses={200: Reply("The dead letter.", DeadLetterView)},
    errors=(*SECURED, "404"),
    description="Needs `tasks:read`. Other tenants' dead letters are 404 too.",
    parameters=(TASK_ID,),
)
async def get_dead_letter(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    tenant = require(request, Permission.TASKS_READ).tenant
    letter = await DeadLetters(services(request).redis, tenant).get(task_id)
    if letter is None:
        raise _not_found(task_id)
    return json_reply(_view(letter))


@operation(
    id="replayDeadLetter",
    summary="Replay a dead letter",
    tag=_DEAD_LETTERS,
    permission=Permission.TASKS_SUBMIT,
    responses={
        202: Reply(
            "A new task with the same type and payload, queued; the dead letter is removed.",
            TaskView,
            headers=("Location", "Idempotent-Replayed"),
        )
    },
    errors=(*SECURED, "404", "409"),
    description=(
        "Submits the task again as a new task, through the same checks as "
        "`POST /v1/tasks`: it needs `tasks:submit` and the task type's own "
        "permission, and 429 when the tenant has too many tasks in flight. "
        "Replaying the same dead letter again returns the same new task "
        "(`Idempotent-Replayed: true`) while it is kept. 409 when the type or "
        "payload is no longer accepted (discard it instead)."
    ),
    parameters=(TASK_ID,),
)
async def replay(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    principal = require(request, Permission.TASKS_SUBMIT)
    svc = services(request)
    letters = DeadLetters(svc.redis, principal.tenant)
    letter = await letters.get(task_id)
    if letter is None:
        raise _not_found(task_id)
    body = {"type": letter.type, "payload": letter.payload}
    # Keyed by the dead letter: replaying it twice at once, or again after the
    # entry could not be removed, gives the same new task rather than two.
    key = f"dead-letter:{task_id}:{letter.dead_lettered_at!r}"
    try:
        submitted = await svc.tasks.submit(principal, body, key)
    except Problem as exc:
        if exc.status != 422:
            raise
        raise Problem(
            409,
            "dead-letter-not-replayable",
            "Dead letter cannot be replayed",
            f"the task type and payload of {task_id} are not accepted as a new task "
            f"({exc.errors[0]['message'] if exc.errors else exc.detail}); "
            f"discard it with DELETE /v1/dead-letters/{task_id}",
            errors=exc.errors,
        ) from None
    view = submitted.view
    if submitted.created:
        svc.metrics.submitted.labels(view["type"], view["queue"]).inc()
    await letters.remove(task_id, replayed_as=view["id"] if submitted.created else None)
    headers = {"Location": view["links"]["self"]}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return json_reply(view, 202, headers)


@operation(
    id="discardDeadLetter",
    summary="Discard a dead letter",
    tag=_DEAD_LETTERS,
    permission=Permission.TASKS_CANCEL,
    responses={204: Reply("Discarded; the failed task keeps its record.")},
    errors=(*SECURED, "404"),
    description="Needs `tasks:cancel`: its work will not be done.",
    parameters=(TASK_ID,),
)
async def discard(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    tenant = require(request, Permission.TASKS_CANCEL).tenant
    if not await DeadLetters(services(request).redis, tenant).remove(task_id):
        raise _not_found(task_id)
    return Response(status_code=204)


routes = [
    Route("/v1/dead-letters", list_dead_letters, methods=["GET"]),
    Route("/v1/dead-letters/{task_id}", get_dead_letter, methods=["GET"]),
    Route("/v1/dead-letters/{task_id}", discard, methods=["DELETE"]),
    Route("/v1/dead-letters/{task_id}/replay", replay, methods=["POST"]),
]
