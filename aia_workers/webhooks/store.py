"""Tenant-scoped reads and writes of webhook endpoints, messages and attempts.

An endpoint's signing secrets are stored encrypted (``aia_workers.secretbox``):
``store_secret`` and ``signing_secrets`` are the only ways in and out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from aia_workers.db.cursors import keyset_page
from aia_workers.db.webhooks import WebhookAttempt, WebhookEndpoint, WebhookMessage
from aia_workers.errors import ConflictError, NotFoundError
from aia_workers.secretbox import SecretBox

__all__ = [
    "EndpointLimitError",
    "WebhookRepository",
    "outbox_counts",
    "signing_secrets",
    "store_secret",
]

STATUSES = ("pending", "sending", "delivered", "failed")


def outbox_counts(session: Session) -> tuple[dict[str, int], int]:
    """Messages by status and disabled endpoints, across tenants (for metrics)."""
    m, e = WebhookMessage, WebhookEndpoint
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in session.execute(select(m.status, func.count()).group_by(m.status)):
        counts[status] = int(count)
    disabled = session.scalar(select(func.count()).select_from(e).where(e.enabled.is_(False)))
    return counts, int(disabled or 0)


def store_secret(
    endpoint: WebhookEndpoint,
    box: SecretBox,
    secret: str,
    *,
    keep_previous_until: datetime | None = None,
) -> None:
    """Make ``secret`` the endpoint's signing secret, encrypted.

    With ``keep_previous_until`` (a rotation) the current secret also signs
    until then.
    """
    if keep_previous_until is not None:
        # Re-encrypted on the way: a row from before encryption leaves no plaintext behind.
        endpoint.previous_secret = box.reseal(endpoint.secret)
        endpoint.previous_secret_expires_at = keep_previous_until
    endpoint.secret = box.seal(secret)


def signing_secrets(endpoint: WebhookEndpoint, box: SecretBox, now: datetime) -> list[str]:
    """The secrets that sign a delivery to ``endpoint`` at ``now``, decrypted: the
    current one, and the previous one while its rotation's grace lasts."""
    secrets = [box.open(endpoint.secret)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(box.open(endpoint.previous_secret))
    return secrets


class EndpointLimitError(ConflictError):
    """Raised when a tenant already has as many webhook endpoints as it may register."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this tenant already has {limit} webhook endpoints, the most allowed "
            "(AIA_WEBHOOK_TENANT_MAX_ENDPOINTS); delete one it no longer needs first"
        )
        self.limit = limit


def _one_at_a_time(session: Session, key: str) -> None:
    # PostgreSQL: transactions naming the same key queue here until the one
    # ahead commits, so each counts what the others added (READ COMMITTED would
    # not show an insert still uncommitted). SQLite has one writer at a time.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))


class WebhookRepository:
    """One tenant's webhooks; no method can see another tenant's rows."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant = tenant_id

    # -- endpoints ------------------------------------------------------------

    def add(self, endpoint: WebhookEndpoint, *, max_endpoints: int) -> None:
        """Store a new endpoint; EndpointLimitError if the tenant has ``max_endpoints`` already."""
        if endpoint.tenant_id != self._tenant:
            raise ValueError("an endpoint belongs to the tenant that stores it")
        _one_at_a_time(self._session, f"aia:webhook-endpoints:{self._tenant}")
        # Inserted before counting: on SQLite the insert is what takes the write
        # lock, so the count then sees every endpoint committed before it.
        self._session.add(endpoint)
        self._session.flush()
        e = WebhookEndpoint
        count = self._session.scalar(
            select(func.count()).select_from(e).where(e.tenant_id == self._tenant)
        )
        if int(count or 0) > max_endpoints:
            raise EndpointLimitError(max_endpoints)

    def endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        found = self._session.get(WebhookEndpoint, endpoint_id)
        if found is None or found.tenant_id != self._tenant:
            raise NotFoundError(f"there is no webhook endpoint {endpoint_id}")
        return found

    def endpoints(
        self, *, limit: int, cursor: str | None
    ) -> tuple[list[WebhookEndpoint], str | None]:
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == self._tenant)
        return keyset_page(
            self._session,
            stmt,
            WebhookEndpoint.created_at,
            WebhookEndpoint.id,
            limit=limit,
            cursor=cursor,
        )

    def remove(self, endpoint_id: str) -> None:
        endpoint = self.endpoint(endpoint_id)
        self._session.execute(
            delete(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint.id)
        )
        self._session.execute(
            delete(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint.id)
        )
        self._session.delete(endpoint)

    # -- messages -------------------------------------------------------------

    def message(self, endpoint_id: str, message_id: str) -> WebhookMessage:
        found = self._session.get(WebhookMessage, message_id)
        if found is None or found.tenant_id != self._tenant or found.endpoint_id != endpoint_id:
            raise NotFoundError(f"endpoint {endpoint_id} has no message {message_id}")
        return found

    def messages(
        self,
        endpoint_id: str,
        *,
        status: str | None,
        event_type: str | None,
        since: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[WebhookMessage], str | None]:
        m = WebhookMessage
        stmt = select(m).where(m.tenant_id == self._tenant, m.endpoint_id == endpoint_id)
        if status is not None:
            stmt = stmt.where(m.status == status)
        if event_type is not None:
            stmt = stmt.where(m.event_type == event_type)
        if since is not None:
            stmt = stmt.where(m.created_at >= since)
        return keyset_page(self._session, stmt, m.created_at, m.id, limit=limit, cursor=cursor)

    def dead_letters(self, *, since: datetime | None = None) -> int:
        """Messages that gave up (kept as failed until resent), failed since ``since`` if given."""
        m = WebhookMessage
        stmt = select(func.count()).select_from(m)
        stmt = stmt.where(m.tenant_id == self._tenant, m.status == "failed")
        if since is not None:
            stmt = stmt.where(m.failed_at >= since)
        return int(self._session.scalar(stmt) or 0)

    def attempts(
        self,
        endpoint_id: str,
        *,
        message_id: str | None,
        succeeded: bool | None,
        since: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[WebhookAttempt], str | None]:
        a = WebhookAttempt
        stmt = select(a).where(a.tenant_id == self._tenant, a.endpoint_id == endpoint_id)
        if message_id is not None:
            stmt = stmt.where(a.message_id == message_id)
        if succeeded is not None:
            stmt = stmt.where(a.succeeded.is_(succeeded))
        if since is not None:
            stmt = stmt.where(a.created_at >= since)
        return keyset_page(self._session, stmt, a.created_at, a.id, limit=limit, cursor=cursor)

    def resend(self, endpoint_id: str, message_id: str, *, now: datetime) -> WebhookMessage:
        """Send a message once more, with the same id; not while it is being sent."""
        endpoint = self.endpoint(endpoint_id)
        if not endpoint.enabled:
            raise ConflictError("the endpoint is disabled; enable it before resending")
        message = self.message(endpoint_id, message_id)
        if message.status == "sending":
            raise ConflictError("the message is being sent right now")
        message.status, message.trigger = "pending", "manual"
        message.next_attempt_at, message.lease_until, message.failed_at = now, None, None
        return message

    def recover(self, endpoint_id: str, since: datetime, *, now: datetime) -> int:
        """Send again every message that failed for good since ``since``; how many."""
        endpoint = self.endpoint(endpoint_id)
        if not endpoint.enabled:
            raise ConflictError("the endpoint is disabled; enable it before recovering")
        m = WebhookMessage
        result = self._session.execute(
            update(m)
            .where(
                m.tenant_id == self._tenant,
                m.endpoint_id == endpoint_id,
                m.status == "failed",
                m.created_at >= since,
            )
            .values(
                status="pending",
                trigger="replay",
                next_attempt_at=now,
                lease_until=None,
                failed_at=None,
            )
        )
        count: Any = result.rowcount  # type: ignore[attr-defined]
        return int(count)
