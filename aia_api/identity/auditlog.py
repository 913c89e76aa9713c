"""The audit log: security events, appended and never changed."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.db.cursors import keyset_page
from aia_workers.db.identity import AuditEvent

__all__ = ["AuditLog"]

log = logging.getLogger(__name__)


class AuditLog:
    """Writes audit events off the event loop and reads them back per tenant."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._pending: set[asyncio.Task[None]] = set()

    def _write(self, event: AuditEvent) -> None:
        with self._sessions.begin() as session:
            session.add(event)

    def record_now(
        self,
        action: str,
        outcome: str,
        *,
        tenant: str | None,
        actor: str | None,
        client_address: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record from blocking code (the CLI)."""
        self._write(
            AuditEvent(
                id=str(uuid.uuid4()),
                tenant_id=tenant,
                actor=actor,
                action=action,
                outcome=outcome,
                client_address=client_address,
                detail=detail,
                created_at=datetime.now(UTC),
            )
        )

    async def record(
        self,
        action: str,
        outcome: str,
        *,
        tenant: str | None,
        actor: str | None,
        client_address: str | None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record from async code: the same write, on a worker thread."""
        await anyio.to_thread.run_sync(
            lambda: self.record_now(
                action,
                outcome,
                tenant=tenant,
                actor=actor,
                client_address=client_address,
                detail=detail,
            )
        )

    def record_soon(self, action: str, outcome: str, **kwargs: Any) -> None:
        """Record without waiting (for events on paths that must not slow down)."""

        async def write() -> None:
            try:
                await self.record(action, outcome, **kwargs)
            except Exception:
                log.exception("could not write the audit event %s", action)

        task = asyncio.get_running_loop().create_task(write())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def list(
        self,
        tenant: str,
        *,
        actions: list[str],
        outcome: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        stmt = select(AuditEvent).where(AuditEvent.tenant_id == tenant)
        if actions:
            stmt = stmt.where(AuditEvent.action.in_(actions))
        if outcome:
            stmt = stmt.where(AuditEvent.outcome == outcome)
        with self._sessions() as session:
            rows, next_cursor = keyset_page(
                session, stmt, AuditEvent.created_at, AuditEvent.id, limit=limit, cursor=cursor
            )
        return [_view(r) for r in rows], next_cursor


def _view(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor,
        "client_address": event.client_address,
        "detail": event.detail,
        "created_at": event.created_at.isoformat(),
    }
