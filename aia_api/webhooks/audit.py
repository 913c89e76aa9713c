"""Audit entries for changes to webhook endpoints: who pointed deliveries where, and when.

An entry never holds a signing secret, nor a URL's query string: receivers
often take a token there.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.orm import Session
from starlette.requests import Request

from aia_api.http.client import client_address
from aia_api.http.tenancy import require
from aia_api.identity.roles import Permission
from aia_workers.db.identity import AuditEvent
from aia_workers.db.webhooks import WebhookEndpoint

__all__ = ["audit_url", "changes", "record_change", "snapshot", "tenant_and_actor"]


def audit_url(url: str) -> str:
    """``url`` as the audit log shows it: scheme, host, port and path; a query becomes ``?...``."""
    parts = urlsplit(url)
    shown = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return f"{shown}?..." if parts.query else shown


def snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """The audited fields of ``endpoint`` as they are now."""
    return {
        "url": audit_url(endpoint.url),
        "events": list(endpoint.events),
        "description": endpoint.description,
        "enabled": endpoint.enabled,
    }


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``{field: {"from": old, "to": new}}`` for each field that changed between two snapshots."""
    return {
        field: {"from": old, "to": after[field]}
        for field, old in before.items()
        if after[field] != old
    }


def record_change(
    session: Session,
    request: Request,
    action: str,
    *,
    tenant: str,
    actor: str,
    detail: dict[str, Any],
) -> None:
    """Add an ``action`` entry (``endpoint.create``, ...) to the change's own transaction.

    Written with the change rather than after it, so no change is kept
    without its entry and no entry tells of a change that rolled back.
    """
    session.add(
        AuditEvent(
            id=str(uuid.uuid4()),
            tenant_id=tenant,
            actor=actor,
            action=action,
            outcome="success",
            client_address=client_address(request),
            detail=detail,
            created_at=datetime.now(UTC),
        )
    )


def tenant_and_actor(request: Request) -> tuple[str, str]:
    """The caller's tenant, and who they are as audit entries name them."""
    principal = require(request, Permission.WEBHOOKS_MANAGE)
    return principal.tenant, principal.actor
