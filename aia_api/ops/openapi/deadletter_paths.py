"""The document's paths for dead letters: tasks quarantined for losing their worker."""

from __future__ import annotations

from aia_api.ops.openapi.components import _SECURED, Json, _json, _operation, _ref

_ABOUT = (
    "A task whose worker process is lost `AIA_POISON_MAX_LOSSES` times (killed, crashed or "
    "out of memory; 3 by default) is failed with a `WorkerLost` error and kept here, with "
    "its payload, instead of being redelivered forever."
)


def _dead_letter_paths() -> Json:
    return {
        "/v1/dead-letters": {
            "get": _operation(
                "listDeadLetters",
                "List dead letters",
                "dead-letters",
                {"200": _json("DeadLetterPage", "Newest first; follow links.next for more.")},
                errors=(*_SECURED, "400", "422"),
                description=(
                    f"{_ABOUT} Needs `tasks:read`. 400 for a cursor this API did not make."
                ),
                parameters=["Limit", "Cursor"],
            )
        },
        "/v1/dead-letters/{task_id}": {
            "get": _operation(
                "getDeadLetter",
                "Read a dead letter",
                "dead-letters",
                {"200": _json("DeadLetterView", "The dead letter.")},
                errors=(*_SECURED, "404"),
                description="Needs `tasks:read`. Other tenants' dead letters are 404 too.",
                parameters=["TaskId"],
            ),
            "delete": _operation(
                "discardDeadLetter",
                "Discard a dead letter",
                "dead-letters",
                {"204": {"description": "Discarded; the failed task keeps its record."}},
                errors=(*_SECURED, "404"),
                description="Needs `tasks:cancel`: its work will not be done.",
                parameters=["TaskId"],
            ),
        },
        "/v1/dead-letters/{task_id}/replay": {
            "post": _operation(
                "replayDeadLetter",
                "Replay a dead letter",
                "dead-letters",
                {
                    "202": _json(
                        "TaskView",
                        "A new task with the same type and payload, queued; the dead letter "
                        "is removed.",
                        Location=_ref("Location", "headers"),
                        **{"Idempotent-Replayed": _ref("Idempotent-Replayed", "headers")},
                    )
                },
                errors=(*_SECURED, "404", "409"),
                description=(
                    "Submits the task again as a new task, through the same checks as "
                    "`POST /v1/tasks`: it needs `tasks:submit` and the task type's own "
                    "permission, and 429 when the tenant has too many tasks in flight. "
                    "Replaying the same dead letter again returns the same new task "
                    "(`Idempotent-Replayed: true`) while it is kept. 409 when the type or "
                    "payload is no longer accepted (discard it instead)."
                ),
                parameters=["TaskId"],
            )
        },
    }
