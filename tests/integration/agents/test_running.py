"""A run, without Celery: the agent and its type loaded, input checked, progress, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from aia_workers.agents.contracts import (
    AgentContext,
    AgentEnvironment,
    AgentInputError,
    AgentType,
    RunCancelled,
)
from aia_workers.agents.environment import environment_from_settings
from aia_workers.agents.payloads import AgentRunPayload
from aia_workers.agents.running import run_agent
from aia_workers.agents.store import AgentRepository
from aia_workers.agents.types import AgentTypes
from aia_workers.backbone.keys import task_key
from aia_workers.db.migrate import upgrade
from aia_workers.errors import TaskFailure
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration


class Config(BaseModel):
    step: int = Field(default=1, ge=1)


class Input(BaseModel):
    steps: int = Field(ge=1, le=10)


class Counter(AgentType[Config, Input]):
    name = "counter"
    summary = "Counts in steps, checking for a cancel between them."
    config_model = Config
    input_model = Input

    def run(self, inputs: Input, ctx: AgentContext) -> dict[str, Any]:
        total = 0
        for i in range(inputs.steps):
            ctx.checkpoint()
            total += self.config.step
            ctx.progress(i + 1, inputs.steps, f"at {total}")
        return {"total": total, "agent_id": ctx.agent_id, "run_id": ctx.run_id}


class Sloppy(Counter):
    name = "sloppy"

    def run(self, inputs: Input, ctx: AgentContext) -> dict[str, Any]:
        return ["not", "an", "object"]  # type: ignore[return-value]


TYPES = AgentTypes(
    types={"counter": Counter, "sloppy": Sloppy},
    schemas={"counter": Counter.schemas(), "sloppy": Sloppy.schemas()},
)


@pytest.fixture
def env(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[AgentEnvironment]:
    settings = Settings(database_url=postgres_url, redis_url=redis_url, data_home=tmp_path)
    upgrade(settings)
    environment = environment_from_settings(settings)
    yield environment
    environment.redis.close()
    environment.sessions.kw["bind"].dispose()


def _agent(env: AgentEnvironment, tenant: str, type_name: str = "counter", **config: Any) -> str:
    with env.sessions.begin() as session:
        name = f"agent-{uuid.uuid4().hex[:8]}"
        return (
            AgentRepository(session, tenant)
            .create(name=name, type_name=type_name, config=config)
            .id
        )


def test_a_run_reports_progress_records_itself_and_returns_the_output(
    env: AgentEnvironment,
) -> None:
    agent_id = _agent(env, "t1", step=5)
    reports: list[tuple[int, int, str | None]] = []
    run_id = str(uuid.uuid4())
    output = run_agent(
        env,
        TYPES,
        "t1",
        AgentRunPayload(agent_id=agent_id, input={"steps": 3}),
        run_id=run_id,
        report=lambda c, t, m=None: reports.append((c, t, m)),
    )
    assert output == {"total": 15, "agent_id": agent_id, "run_id": run_id}
    assert reports == [(1, 3, "at 5"), (2, 3, "at 10"), (3, 3, "at 15")]
    with env.sessions() as session:
        runs, _ = AgentRepository(session, "t1").runs(agent_id, limit=5, cursor=None)
        assert [(r.id, r.input) for r in runs] == [(run_id, {"steps": 3})]


def test_a_cancelled_run_stops_at_its_next_checkpoint(env: AgentEnvironment) -> None:
    agent_id = _agent(env, "t1")
    run_id = str(uuid.uuid4())
    env.redis.hset(task_key(run_id), "status", "running")
    reports: list[int] = []

    def report(current: int, total: int, message: str | None = None) -> None:
        reports.append(current)
        if current == 2:
            # As the API's cancel does: the live record says so.
            env.redis.hset(task_key(run_id), "status", "cancelled")

    with pytest.raises(RunCancelled, match=run_id):
        run_agent(
            env,
            TYPES,
            "t1",
            AgentRunPayload(agent_id=agent_id, input={"steps": 5}),
            run_id=run_id,
            report=report,
        )
    assert reports == [1, 2]
    env.redis.delete(task_key(run_id))


def _run(env: AgentEnvironment, tenant: str, agent_id: str, inputs: dict[str, Any]) -> None:
    run_agent(
        env,
        TYPES,
        tenant,
        AgentRunPayload(agent_id=agent_id, input=inputs),
        run_id=str(uuid.uuid4()),
        report=lambda *_: None,
    )


def test_a_run_fails_saying_what_to_change(env: AgentEnvironment) -> None:
    agent_id = _agent(env, "t1")
    with pytest.raises(AgentInputError, match=r"input\.steps: Input should be less than"):
        _run(env, "t1", agent_id, {"steps": 11})
    # Another tenant's agent is not there for this one.
    with pytest.raises(TaskFailure, match="does not exist: it was deleted"):
        _run(env, "t2", agent_id, {"steps": 1})
    with pytest.raises(TaskFailure, match=r"unknown agent type 'gone'.*install it"):
        _run(env, "t1", _agent(env, "t1", "gone"), {"steps": 1})
    with pytest.raises(TaskFailure, match=r"no longer valid.*config\.step.*PATCH"):
        _run(env, "t1", _agent(env, "t1", step=0), {"steps": 1})
    with pytest.raises(TaskFailure, match="not a JSON object"):
        _run(env, "t1", _agent(env, "t1", "sloppy"), {"steps": 1})
