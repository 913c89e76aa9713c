"""The document's paths, in the order of the route modules."""

from __future__ import annotations

from aia_api.ops.openapi.components import (
    _SECURED,
    _WITH_BODY,
    Json,
    _body,
    _json,
    _operation,
    _ref,
)
from aia_workers.backbone.catalog import CATALOG

# -- paths ----------------------------------------------------------------------------


def _task_paths(submit_schema: Json) -> Json:
    task_types = ", ".join(f"`{name}`" for name in sorted(CATALOG))
    return {
        "/v1/tasks": {
            "post": _operation(
                "submitTask",
                "Submit a task",
                "tasks",
                {
                    "202": _json(
                        "TaskView",
                        "Accepted and queued (or, on a replayed Idempotency-Key, the first task).",
                        Location=_ref("Location", "headers"),
                        **{"Idempotent-Replayed": _ref("Idempotent-Replayed", "headers")},
                    )
                },
                errors=(*_SECURED, *_WITH_BODY, "409"),
                description=(
                    f"Task types: {task_types}; each has its own payload schema (the request "
                    "body is one of `SubmitRequest.<type>`). Needs `tasks:submit`. 403 also "
                    "when a priority or a `diagnostics.sleep` is beyond the bound of the "
                    "caller's role (`beyond-role-bound`, naming it in `bound`). 409 when the "
                    "Idempotency-Key was used with another body; 429 also when the tenant has "
                    "too many tasks in flight; 503 when the broker refused the task."
                ),
                parameters=["IdempotencyKey"],
                body=_body(submit_schema, "What to run, with what payload, and when."),
            ),
            "get": _operation(
                "listTasks",
                "List tasks",
                "tasks",
                {"200": _json("TaskPage", "A page of the tenant's recorded tasks, newest first.")},
                errors=(*_SECURED, "400", "422"),
                description=(
                    "Reads the recorded history (slightly behind the live record). "
                    "Needs `tasks:read`. 400 for a cursor this API did not make."
                ),
                parameters=["Status", "Type", "Limit", "Cursor"],
            ),
        },
        "/v1/tasks/{task_id}": {
            "get": _operation(
                "getTask",
                "Read a task",
                "tasks",
                {"200": _json("TaskView", "The task.")},
                errors=(*_SECURED, "404"),
                description="Needs `tasks:read`. Tasks of other tenants are 404 too.",
                parameters=["TaskId"],
            )
        },
        "/v1/tasks/{task_id}/cancel": {
            "post": _operation(
                "cancelTask",
                "Cancel a task",
                "tasks",
                {"202": _json("TaskView", "Cancelled; a running body is stopped.")},
                errors=(*_SECURED, "404", "409"),
                description="Needs `tasks:cancel`. 409 when the task has already finished.",
                parameters=["TaskId"],
            )
        },
    }


_SSE_DESCRIPTION = (
    "Server-Sent Events of one task: first what happened after Last-Event-ID (or `?after=`), "
    "then live events, until the task ends. Each event is `id: <seq>`, `event: <name>` "
    "(queued, started, progress, retrying, succeeded, failed, cancelled) and "
    "`data: <TaskEvent JSON>`; comments (`: keep-alive`) keep the connection open. An "
    "`event: error` with a problem in `data` says the stream was dropped: reconnect with "
    "Last-Event-ID; its `status` is 401 or 403 when the credentials were revoked, expired "
    "or lost `tasks:read`, and the stream ends there. Browsers, which cannot set headers "
    "on an EventSource, send `?ticket=` from `POST /v1/streams/tickets` instead. 429 when "
    "the principal already holds `AIA_STREAM_MAX_CONNECTIONS` streams (SSE and WebSocket, "
    "every API process). Needs `tasks:read`."
)

_WS_DESCRIPTION = (
    "A WebSocket (OpenAPI has no operation for one, so it is described here and in "
    "`x-websocket`): one connection follows many tasks. Authenticate with the Authorization "
    "or X-API-Key header, or where headers cannot be set (browsers) with `?ticket=` from "
    "`POST /v1/streams/tickets`. Send `WsCommand` messages (`subscribe` with an optional "
    "`after`, `unsubscribe`); receive `WsMessage`s: `subscribed`, `unsubscribed`, `event` "
    "(a TaskEvent's fields), `error` (status 429 past `AIA_WS_MAX_SUBSCRIPTIONS` tasks "
    "followed at once). Close codes: 1008 unauthenticated or forbidden, also when the "
    "credentials are revoked or expire while open; 1011 server error or lost stream; 1013 "
    "rate limited, or the principal already holds `AIA_STREAM_MAX_CONNECTIONS` streams. "
    "Needs `tasks:read`."
)

_TICKET_DESCRIPTION = (
    "A ticket for browsers, which cannot set headers on an EventSource or a WebSocket: "
    "open one stream with `?ticket=<ticket>` on `/v1/tasks/{task_id}/events` or `/v1/ws` "
    "within `expires_in` seconds (`AIA_STREAM_TICKET_TTL_SECONDS`). It works once, for the "
    "principal that asked for it, and the stream then lives as long as these credentials "
    "do. Credentials in a query string (`?access_token=`) are not accepted. Needs "
    "`tasks:read`."
)

_TICKET_PARAMETER = {
    "name": "ticket",
    "in": "query",
    "required": False,
    "description": "A stream ticket, in place of the Authorization or X-API-Key header.",
    "schema": {"type": "string", "maxLength": 64},
}


def _stream_paths() -> Json:
    events = _operation(
        "taskEvents",
        "Follow a task's events (SSE)",
        "streams",
        {
            "200": {
                "description": "An event stream; each `data:` is a TaskEvent.",
                "content": {
                    "text/event-stream": {
                        "schema": {"type": "string"},
                        "x-event-schema": _ref("TaskEvent"),
                    }
                },
            }
        },
        errors=(*_SECURED, "400", "404"),
        description=_SSE_DESCRIPTION,
        parameters=["TaskId", "LastEventId", "After"],
    )
    events["parameters"].append(_TICKET_PARAMETER)
    return {
        "/v1/streams/tickets": {
            "post": _operation(
                "createStreamTicket",
                "Get a stream ticket",
                "streams",
                {"201": _json("StreamTicket", "A single-use ticket for one stream.")},
                errors=_SECURED,
                description=_TICKET_DESCRIPTION,
            )
        },
        "/v1/tasks/{task_id}/events": {"get": events},
        "/v1/ws": {
            "summary": "Follow many tasks (WebSocket)",
            "description": _WS_DESCRIPTION,
            "x-websocket": {
                "url": "/v1/ws",
                "client-messages": _ref("WsCommand"),
                "server-messages": _ref("WsMessage"),
                "query": {"ticket": "a stream ticket, when headers cannot be set"},
            },
        },
    }


def _auth_paths() -> Json:
    refresh_body = _body(_ref("RefreshRequest"), "A refresh token from /v1/auth/token.")
    body_errors = (*_WITH_BODY, "429", "503")
    return {
        "/v1/auth/token": {
            "post": _operation(
                "login",
                "Log in",
                "auth",
                {"200": _json("TokenResponse", "An access token and a refresh token.")},
                errors=(*body_errors, "401"),
                description=(
                    "Public. Rate limited per client address. Failed logins are budgeted "
                    "per account and address, per account and per address; past a budget "
                    "each further attempt waits, the wait doubling (429 locked-out with "
                    "Retry-After, even for the right password)."
                ),
                body=_body(_ref("TokenRequest"), "Username and password."),
                public=True,
            )
        },
        "/v1/auth/refresh": {
            "post": _operation(
                "refresh",
                "Rotate the refresh token",
                "auth",
                {"200": _json("TokenResponse", "New tokens; the old refresh token is spent.")},
                errors=(*body_errors, "401"),
                description=(
                    "Public. A refresh token works once; using a spent one revokes its "
                    "whole family (401)."
                ),
                body=refresh_body,
                public=True,
            )
        },
        "/v1/auth/logout": {
            "post": _operation(
                "logout",
                "Log out",
                "auth",
                {"204": {"description": "The refresh token is revoked (known or not)."}},
                errors=body_errors,
                description="Public: the refresh token is the credential.",
                body=refresh_body,
                public=True,
            )
        },
        "/v1/auth/mfa/enroll": {
            "post": _operation(
                "mfaEnroll",
                "Start enrolling a second factor (TOTP)",
                "auth",
                {"200": _json("MfaEnrollment", "A new secret, in force once verified.")},
                errors=(*_SECURED, *_WITH_BODY, "409"),
                description=(
                    "For a logged-in user (an access token; API keys get 403), with the "
                    "account's password again: 403 `reauthentication-failed` when it is wrong, "
                    "429 while failed logins throttle the account. Add the secret to an "
                    "authenticator app, then send its code to /v1/auth/mfa/verify."
                ),
                body=_body(_ref("PasswordRequest"), "The account's password."),
            )
        },
        "/v1/auth/mfa/verify": {
            "post": _operation(
                "mfaVerify",
                "Turn the second factor on",
                "auth",
                {"200": _json("MfaEnabled", "MFA is on; logins now need `totp`.")},
                errors=(*_SECURED, *_WITH_BODY),
                description=(
                    "For a logged-in user (API keys get 403). 422 when the code does not match "
                    "the enrolled secret, or there is none. The code is spent: a login needs "
                    "the next one. Access tokens say a session passed MFA (`amr` holds `mfa`) "
                    "only from the next login with a code."
                ),
                body=_body(_ref("CodeRequest"), "The code the authenticator app shows now."),
            )
        },
        "/v1/auth/mfa/disable": {
            "post": _operation(
                "mfaDisable",
                "Turn the second factor off",
                "auth",
                {"204": {"description": "MFA is off; every session of the account is ended."}},
                errors=(*_SECURED, *_WITH_BODY, "409"),
                description=(
                    "For a logged-in user (API keys get 403), with the password and a current "
                    "code or an unused recovery code (which is spent): 403 "
                    "`reauthentication-failed` when either is wrong, 429 while failed logins "
                    "throttle the account, 409 when MFA is not on. Audited (`mfa.disable`)."
                ),
                body=_body(_ref("MfaDisableRequest"), "The password and a code."),
            )
        },
        "/v1/auth/mfa/reset": {
            "post": _operation(
                "mfaReset",
                "Reset a person's second factor",
                "auth",
                {"204": {"description": "MFA is off; every session of the account is ended."}},
                errors=(*_SECURED, *_WITH_BODY, "404", "409"),
                description=(
                    "For someone who lost their device. Needs `users:manage`, and the account "
                    "in the caller's tenant (404 otherwise); 409 when its MFA is not on. The "
                    "person logs in with the password alone and enrolls again. Audited "
                    "(`mfa.reset`). On the host: `aia users reset-mfa`."
                ),
                body=_body(_ref("MfaResetRequest"), "Whose MFA to reset."),
            )
        },
    }


def _key_paths() -> Json:
    return {
        "/v1/keys": {
            "post": _operation(
                "createKey",
                "Create an API key",
                "keys",
                {
                    "201": _json(
                        "NewKey",
                        "The key, shown this once; only its hash is kept.",
                        Location=_ref("Location", "headers"),
                    )
                },
                errors=(*_SECURED, *_WITH_BODY),
                description=(
                    "Admins (`keys:manage`) manage the tenant's keys; a person without it "
                    "manages the keys they made. The new key's role may not exceed the "
                    "caller's, and it never acts above its maker's current role: a key made by "
                    "a person follows their demotion and stops when they are deleted; a key "
                    "made by a key expires with it and stops when it is revoked. An `admin` "
                    "key needs a person whose session passed MFA (403 `mfa-required`). Keys "
                    "expire after `AIA_API_KEY_DEFAULT_DAYS` (90) unless `expires_in_days` "
                    "says otherwise; longer or `never` needs `keys:manage` (403), and past "
                    "`AIA_API_KEY_MAX_DAYS` (365) is a 422 `key-lifetime-too-long`."
                ),
                body=_body(_ref("KeyRequest"), "A name, a role and an optional lifetime."),
            ),
            "get": _operation(
                "listKeys",
                "List API keys",
                "keys",
                {"200": _json("KeyList", "The tenant's keys, without the keys themselves.")},
                errors=_SECURED,
                description="Admins see every key of the tenant; a person sees their own.",
            ),
        },
        "/v1/keys/{key_id}": {
            "delete": _operation(
                "revokeKey",
                "Revoke an API key",
                "keys",
                {"204": {"description": "Revoked, at once in every API process."}},
                errors=(*_SECURED, "404"),
                description="Admins revoke any key of the tenant; a person, their own.",
                parameters=["KeyId"],
            )
        },
    }


def _audit_paths() -> Json:
    return {
        "/v1/audit": {
            "get": _operation(
                "listAudit",
                "The tenant's security events",
                "audit",
                {"200": _json("AuditPage", "Newest first; follow links.next for more.")},
                errors=(*_SECURED, "400", "422"),
                description=(
                    "Needs `audit:read`. Filter with `action` (repeat for several) and "
                    "`outcome`; 400 for a cursor this API did not make."
                ),
                parameters=["Action", "Outcome", "Limit", "Cursor"],
            )
        }
    }


def _dataset_paths() -> Json:
    return {
        "/v1/ml/datasets": {
            "post": _operation(
                "uploadDataset",
                "Upload a dataset",
                "ml",
                {
                    "201": _json(
                        "DatasetView",
                        "Stored, with the kind, missing and distinct counts of every column.",
                        Location=_ref("Location", "headers"),
                    )
                },
                errors=(*_SECURED, *_WITH_BODY),
                description=(
                    "Needs `ml:train`. Send CSV (`text/csv`, header first, `?name=`), a "
                    "multipart form with the CSV in its `file` part, or JSON rows. "
                    "Data that cannot be used is a 422 naming the column and row."
                ),
                body={
                    "required": True,
                    "description": "The table.",
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "file": {
                                        "type": "string",
                                        "contentMediaType": "text/csv",
                                        "description": "The CSV file.",
                                    },
                                    "name": {"type": "string", "maxLength": 200},
                                },
                                "required": ["file"],
                            }
                        },
                        "application/json": {"schema": _ref("DatasetRows")},
                    },
                },
            ),
            "get": _operation(
                "listDatasets",
                "List datasets",
                "ml",
                {"200": _json("DatasetPage", "Newest first; follow links.next for more.")},
                errors=(*_SECURED, "400", "422"),
                description="Needs `ml:read`.",
                parameters=["Limit", "Cursor"],
            ),
        },
        "/v1/ml/datasets/{dataset_id}": {
            "get": _operation(
                "getDataset",
                "A dataset's schema",
                "ml",
                {"200": _json("DatasetView", "The dataset.")},
                errors=(*_SECURED, "404"),
                description="Needs `ml:read`.",
                parameters=["DatasetId"],
            )
        },
    }
