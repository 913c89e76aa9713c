"""Agents and their runs in the database (SQLite and PostgreSQL), one tenant at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.agents.store import AgentNameTakenError, AgentRepository
from aia_workers.db.migrate import upgrade
from aia_workers.db.schema import Base
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.errors import ConflictError
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine = make_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


def _create(sessions: sessionmaker[Session], tenant: str, name: str, **extra: object) -> str:
    with sessions.begin() as session:
        agent = AgentRepository(session, tenant).create(
            name=name, type_name="echo", config={"prefix": ">"}, **extra
        )
        return agent.id


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_an_agent_is_stored_and_seen_by_its_tenant_only(sessions: sessionmaker[Session]) -> None:
    agent_id = _create(sessions, "t1", "helper", description="says it back", created_by="key:1")
    with sessions() as session:
        mine = AgentRepository(session, "t1").get(agent_id)
        assert mine is not None
        assert (mine.name, mine.type, mine.config) == ("helper", "echo", {"prefix": ">"})
        assert mine.max_concurrency == 1
        assert mine.description == "says it back"
        assert mine.created_by == "key:1"
        assert AgentRepository(session, "t2").get(agent_id) is None
        assert AgentRepository(session, "t2").list(limit=10, cursor=None) == ([], None)


def test_a_name_is_unique_per_tenant(sessions: sessionmaker[Session]) -> None:
    _create(sessions, "t1", "helper")
    with pytest.raises(AgentNameTakenError, match="'helper'"):
        _create(sessions, "t1", "helper")
    # Another tenant may use it.
    _create(sessions, "t2", "helper")
    other = _create(sessions, "t1", "other")
    with sessions.begin() as session:
        store = AgentRepository(session, "t1")
        row = store.get(other)
        assert row is not None
        with pytest.raises(AgentNameTakenError):
            store.update(row, name="helper")
        # The clash undid only itself: the transaction goes on.
        store.update(row, description="still here")
    with sessions() as session:
        row = AgentRepository(session, "t1").get(other)
        assert row is not None
        assert (row.name, row.description) == ("other", "still here")


def test_update_changes_only_what_is_given(sessions: sessionmaker[Session]) -> None:
    agent_id = _create(sessions, "t1", "helper", description="first")
    with sessions.begin() as session:
        store = AgentRepository(session, "t1")
        row = store.get(agent_id)
        assert row is not None
        created = row.updated_at
        store.update(row, config={"prefix": "#"}, max_concurrency=3)
    with sessions.begin() as session:
        store = AgentRepository(session, "t1")
        row = store.get(agent_id)
        assert row is not None
        assert (row.config, row.max_concurrency, row.description) == ({"prefix": "#"}, 3, "first")
        assert row.updated_at >= created
        store.update(row, clear_description=True)
    with sessions() as session:
        row = AgentRepository(session, "t1").get(agent_id)
        assert row is not None
        assert row.description is None


def test_agents_page_newest_first(sessions: sessionmaker[Session]) -> None:
    ids = [_create(sessions, "t1", f"a{i}") for i in range(5)]
    seen: list[str] = []
    cursor = None
    with sessions() as session:
        store = AgentRepository(session, "t1")
        while True:
            rows, cursor = store.list(limit=2, cursor=cursor)
            seen += [row.id for row in rows]
            if cursor is None:
                break
    assert seen == ids[::-1]


def test_runs_are_recorded_once_and_listed_newest_first(sessions: sessionmaker[Session]) -> None:
    agent_id = _create(sessions, "t1", "helper")
    with sessions.begin() as session:
        store = AgentRepository(session, "t1")
        for i in range(3):
            store.record_run(f"run-{i}", agent_id, {"text": str(i)}, created_by="user:u")
    with sessions.begin() as session:
        # The worker records it again when it starts: the API's row stands.
        again = AgentRepository(session, "t1").record_run("run-1", agent_id, {"text": "other"})
        assert (again.input, again.created_by) == ({"text": "1"}, "user:u")
    with sessions.begin() as session:
        store = AgentRepository(session, "t1")
        # The worker first, then the API: who asked is kept.
        store.record_run("run-3", agent_id, {"text": "3"})
        assert store.record_run("run-3", agent_id, {}, created_by="key:k").created_by == "key:k"
        session.delete(store.record_run("run-3", agent_id, {}))
    with sessions.begin() as session, pytest.raises(ConflictError):
        AgentRepository(session, "t2").record_run("run-1", agent_id, {})
    with sessions() as session:
        store = AgentRepository(session, "t1")
        rows, cursor = store.runs(agent_id, limit=2, cursor=None)
        assert [r.id for r in rows] == ["run-2", "run-1"]
        rest, end = store.runs(agent_id, limit=2, cursor=cursor)
        assert ([r.id for r in rest], end) == (["run-0"], None)
        assert AgentRepository(session, "t2").runs(agent_id, limit=10, cursor=None) == ([], None)


def test_deleting_an_agent_deletes_its_runs(sessions: sessionmaker[Session]) -> None:
    agent_id = _create(sessions, "t1", "helper")
    kept = _create(sessions, "t1", "kept")
    with sessions.begin() as session:
        store = AgentRepository(session, "t1")
        store.record_run("r1", agent_id, {})
        store.record_run("r2", kept, {})
    with sessions.begin() as session:
        store = AgentRepository(session, "t1")
        row = store.get(agent_id)
        assert row is not None
        store.delete(row)
    with sessions() as session:
        store = AgentRepository(session, "t1")
        assert store.get(agent_id) is None
        assert store.runs(agent_id, limit=10, cursor=None) == ([], None)
        assert [r.id for r in store.runs(kept, limit=10, cursor=None)[0]] == ["r2"]
