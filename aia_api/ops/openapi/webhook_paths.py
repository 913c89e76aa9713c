"""The document's paths for webhook endpoints, their messages and attempts."""

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

_NEEDS = "Needs `webhooks:manage`."
_BLOCKED = (
    " A URL whose host is a loopback, private, link-local, metadata or other non-public "
    "address, in any spelling (`2130706433`, `[::ffff:127.0.0.1]`, ...), is a 422 "
    "`webhook-url-blocked` naming the rule, unless `AIA_WEBHOOK_ALLOWED_NETWORKS` lets it; "
    "a host name is checked when each delivery resolves it."
)


def _webhook_paths() -> Json:
    one = ["EndpointId"]
    return {
        "/v1/webhooks": {
            "post": _operation(
                "createWebhook",
                "Add a webhook endpoint",
                "webhooks",
                {"201": _json("NewEndpoint", "Created; the secret is shown this once.")},
                errors=(*_SECURED, *_WITH_BODY, "409"),
                description=(
                    f"{_NEEDS} Deliveries are signed per the Standard Webhooks spec "
                    "(`webhook-id`, `webhook-timestamp`, `webhook-signature`).{_BLOCKED} "
                    "409 `webhook-endpoint-limit` when the tenant has "
                    "`AIA_WEBHOOK_TENANT_MAX_ENDPOINTS` (50) endpoints already. "
                    "Audited as `endpoint.create`."
                ),
                body=_body(_ref("EndpointRequest"), "Where to send which events."),
            ),
            "get": _operation(
                "listWebhooks",
                "List webhook endpoints",
                "webhooks",
                {"200": _json("EndpointPage", "Newest first.")},
                errors=(*_SECURED, "400", "422"),
                description=_NEEDS,
                parameters=["Limit", "Cursor"],
            ),
        },
        "/v1/webhooks/event-types": {
            "get": _operation(
                "listWebhookEventTypes",
                "The events an endpoint can subscribe to",
                "webhooks",
                {"200": _json("EventTypeList", "Each with the JSON Schema of its data.")},
                errors=_SECURED,
                description=_NEEDS,
            )
        },
        "/v1/webhooks/{endpoint_id}": {
            "get": _operation(
                "getWebhook",
                "A webhook endpoint",
                "webhooks",
                {"200": _json("EndpointView", "The endpoint (never its secret).")},
                errors=(*_SECURED, "404"),
                description=_NEEDS,
                parameters=one,
            ),
            "patch": _operation(
                "updateWebhook",
                "Change an endpoint: url, events, description, enabled",
                "webhooks",
                {"200": _json("EndpointView", "Changed.")},
                errors=(*_SECURED, *_WITH_BODY, "404"),
                description=(
                    f"{_NEEDS} Enabling it again restarts the auto-disable clock.{_BLOCKED} "
                    "Audited as `endpoint.update`, with each changed field."
                ),
                parameters=one,
                body=_body(_ref("EndpointPatch"), "The fields to change."),
            ),
            "delete": _operation(
                "deleteWebhook",
                "Remove an endpoint, its messages and attempts",
                "webhooks",
                {"204": {"description": "Removed."}},
                errors=(*_SECURED, "404"),
                description=f"{_NEEDS} Audited as `endpoint.delete`.",
                parameters=one,
            ),
        },
        "/v1/webhooks/{endpoint_id}/rotate-secret": {
            "post": _operation(
                "rotateWebhookSecret",
                "Rotate the signing secret",
                "webhooks",
                {"200": _json("NewEndpoint", "The new secret, shown this once.")},
                errors=(*_SECURED, "404"),
                description=(
                    f"{_NEEDS} The old secret keeps signing (a second signature) for "
                    "`AIA_WEBHOOK_SECRET_GRACE_SECONDS`. Audited as `endpoint.rotate_secret` "
                    "(never with a secret)."
                ),
                parameters=one,
            )
        },
        "/v1/webhooks/{endpoint_id}/test": {
            "post": _operation(
                "testWebhook",
                "Send a webhook.test event",
                "webhooks",
                {"202": _json("MessageView", "Queued; follow its attempts.")},
                errors=(*_SECURED, "404", "409"),
                description=f"{_NEEDS} 409 when the endpoint is disabled.",
                parameters=one,
            )
        },
        "/v1/webhooks/{endpoint_id}/messages": {
            "get": _operation(
                "listWebhookMessages",
                "Messages for an endpoint",
                "webhooks",
                {"200": _json("MessagePage", "Newest first.")},
                errors=(*_SECURED, "400", "404", "422"),
                description=f"{_NEEDS} Failed messages are the dead letters, kept with their data.",
                parameters=[*one, "MessageStatus", "EventType", "Since", "Limit", "Cursor"],
            )
        },
        "/v1/webhooks/{endpoint_id}/attempts": {
            "get": _operation(
                "listWebhookAttempts",
                "Delivery attempts for an endpoint",
                "webhooks",
                {"200": _json("AttemptPage", "Newest first.")},
                errors=(*_SECURED, "400", "404", "422"),
                description=_NEEDS,
                parameters=[*one, "MessageId", "AttemptOutcome", "Since", "Limit", "Cursor"],
            )
        },
        "/v1/webhooks/{endpoint_id}/messages/{message_id}/resend": {
            "post": _operation(
                "resendWebhookMessage",
                "Send a message again, with the same webhook-id",
                "webhooks",
                {"202": _json("MessageView", "Queued for one more attempt.")},
                errors=(*_SECURED, "404", "409"),
                description=f"{_NEEDS} 409 while it is being sent or the endpoint is disabled.",
                parameters=[*one, "MessageIdPath"],
            )
        },
        "/v1/webhooks/{endpoint_id}/recover": {
            "post": _operation(
                "recoverWebhookMessages",
                "Resend every failed message since a time",
                "webhooks",
                {"202": _json("Recovered", "How many were queued again.")},
                errors=(*_SECURED, *_WITH_BODY, "404", "409"),
                description=_NEEDS,
                parameters=one,
                body=_body(_ref("RecoverRequest"), "Since when."),
            )
        },
    }
