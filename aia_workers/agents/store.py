"""Tenant-scoped reads and writes of agents and their runs."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy.exc
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from aia_workers.db.agents import Agent, AgentMessage, AgentRun
from aia_workers.db.cursors import keyset_page
from aia_workers.errors import ConflictError

__all__ = ["AgentNameTakenError", "AgentRepository"]


class AgentNameTakenError(ConflictError):
    """Raised when a tenant already has an agent of the name asked for."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the tenant has an agent named {name!r} already; pick another name")
        self.name = name


def _now() -> datetime:
    return datetime.now(UTC)


class AgentRepository:
    """Agents and runs of one tenant; no method can see or change another tenant's rows.

    Writes are flushed, not committed: the caller owns the transaction.
    """

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    # -- agents ---------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        type_name: str,
        config: Mapping[str, Any],
        description: str | None = None,
        max_concurrency: int = 1,
        created_by: str | None = None,
    ) -> Agent:
        """A new agent; AgentNameTakenError when the tenant uses ``name`` already."""
        now = _now()
        agent = Agent(
            id=str(uuid.uuid4()),
            tenant_id=self._tenant_id,
            name=name,
            type=type_name,
            config=dict(config),
            max_concurrency=max_concurrency,
            description=description,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
        with self._name_unique(name):
            self._session.add(agent)
        return agent

    def get(self, agent_id: str) -> Agent | None:
        stmt = select(Agent).where(Agent.tenant_id == self._tenant_id, Agent.id == agent_id)
        return self._session.scalars(stmt).one_or_none()

    def list(self, *, limit: int, cursor: str | None) -> tuple[list[Agent], str | None]:
        """A page of the tenant's agents, newest first, and the cursor of the next."""
        stmt = select(Agent).where(Agent.tenant_id == self._tenant_id)
        return keyset_page(
            self._session, stmt, Agent.created_at, Agent.id, limit=limit, cursor=cursor
        )

    def update(
        self,
        agent: Agent,
        *,
        name: str | None = None,
        description: str | None = None,
        config: Mapping[str, Any] | None = None,
        max_concurrency: int | None = None,
        clear_description: bool = False,
    ) -> Agent:
        """Change the fields given (None leaves one as it is); AgentNameTakenError on a clash."""
        self._own(agent)
        with self._name_unique(name or agent.name):
            if name is not None:
                agent.name = name
            if description is not None or clear_description:
                agent.description = description
            if config is not None:
                agent.config = dict(config)
            if max_concurrency is not None:
                agent.max_concurrency = max_concurrency
            agent.updated_at = _now()
        return agent

    def delete(self, agent: Agent) -> None:
        """Delete ``agent``, its runs' rows (the runs' task records are kept) and its mailbox."""
        self._own(agent)
        self._session.execute(
            delete(AgentRun).where(
                AgentRun.tenant_id == self._tenant_id, AgentRun.agent_id == agent.id
            )
        )
        self._session.delete(agent)
        self._session.flush()
        # After the agent's row: a message being posted holds that row's lock,
        # so by now it has committed and this takes it too.
        self._session.execute(
            delete(AgentMessage).where(
                AgentMessage.tenant_id == self._tenant_id, AgentMessage.agent_id == agent.id
            )
        )

    # -- runs -----------------------------------------------------------------

    def record_run(
        self,
        run_id: str,
        agent_id: str,
        inputs: Mapping[str, Any],
        *,
        created_by: str | None = None,
    ) -> AgentRun:
        """The run ``run_id`` of ``agent_id``, recorded now unless it is already.

        Idempotent: the API records a run when it submits it and the worker
        again when it starts it (a run may come through ``/v1/tasks``, or run twice).
        """
        existing = self._session.get(AgentRun, run_id)
        if existing is not None:
            if existing.tenant_id != self._tenant_id:
                raise ConflictError(f"run {run_id} belongs to another tenant")
            if existing.created_by is None and created_by is not None:
                # The worker got there first; it does not know who asked.
                existing.created_by = created_by
            return existing
        run = AgentRun(
            id=run_id,
            tenant_id=self._tenant_id,
            agent_id=agent_id,
            input=dict(inputs),
            created_by=created_by,
            created_at=_now(),
        )
        try:
            with self._session.begin_nested():
                self._session.add(run)
        except sqlalchemy.exc.IntegrityError:
            # Recorded by the other side in between: theirs stands.
            found = self._session.get(AgentRun, run_id)
            if found is None or found.tenant_id != self._tenant_id:
                raise
            return found
        return run

    def runs(
        self, agent_id: str, *, limit: int, cursor: str | None
    ) -> tuple[builtins.list[AgentRun], str | None]:
        """A page of the agent's runs, newest first, and the cursor of the next."""
        stmt = select(AgentRun).where(
            AgentRun.tenant_id == self._tenant_id, AgentRun.agent_id == agent_id
        )
        return keyset_page(
            self._session, stmt, AgentRun.created_at, AgentRun.id, limit=limit, cursor=cursor
        )

    # -- helpers --------------------------------------------------------------

    def _own(self, agent: Agent) -> None:
        if agent.tenant_id != self._tenant_id:
            raise ValueError("an agent is changed only through its own tenant's repository")

    @contextmanager
    def _name_unique(self, name: str) -> Iterator[None]:
        # Changes made inside are flushed in a savepoint of their own, so a
        # clash undoes them alone and the caller's transaction goes on.
        try:
            with self._session.begin_nested():
                yield
        except sqlalchemy.exc.IntegrityError:
            raise AgentNameTakenError(name) from None
