"""Workflow runs in the database, stepped without Celery: inputs from upstream outputs,
at-least-once delivery, a failed step ending its run, a resume, a cancel."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from aia_workers.agents.contracts import AgentContext, AgentEnvironment, AgentType
from aia_workers.agents.environment import environment_from_settings
from aia_workers.agents.store import AgentRepository
from aia_workers.agents.types import AgentTypes
from aia_workers.backbone.keys import task_key
from aia_workers.backbone.scripts import SUBMIT_LUA
from aia_workers.db.migrate import upgrade
from aia_workers.errors import ConflictError, TaskFailure
from aia_workers.settings import Settings
from aia_workers.workflows.lifecycle import cancel_run, prepare_resume, to_resume
from aia_workers.workflows.payloads import WorkflowStepPayload
from aia_workers.workflows.records import StepTask, record_calls
from aia_workers.workflows.stepping import end_workflow_step, run_workflow_step
from aia_workers.workflows.store import WorkflowRepository

pytestmark = pytest.mark.integration

TENANT = "t1"


class Input(BaseModel):
    text: str | None = None
    first: dict[str, Any] | None = None
    second: dict[str, Any] | None = None


class Config(BaseModel):
    pass


class Tally(AgentType[Config, Input]):
    """Says what it got, counting its runs in Redis (``tally:<agent id>``)."""

    name = "tally"
    summary = "Counts its runs."
    config_model = Config
    input_model = Input

    def run(self, inputs: Input, ctx: AgentContext) -> dict[str, Any]:
        ctx.env.redis.incr(f"tally:{ctx.agent_id}")
        if inputs.text is not None:
            return {"said": inputs.text}
        return {"said": f"{(inputs.first or {}).get('said')}+{(inputs.second or {}).get('said')}"}


TYPES = AgentTypes(types={"tally": Tally}, schemas={"tally": Tally.schemas()})


@pytest.fixture
def env(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[AgentEnvironment]:
    settings = Settings(database_url=postgres_url, redis_url=redis_url, data_home=tmp_path)
    upgrade(settings)
    environment = environment_from_settings(settings)
    yield environment
    environment.redis.close()
    environment.sessions.kw["bind"].dispose()


def _fan_in(env: AgentEnvironment) -> tuple[str, dict[str, str], dict[str, str]]:
    """A run of a, b -> c; its id, each step's task id and each step's agent."""
    with env.sessions.begin() as session:
        agents = {
            s: AgentRepository(session, TENANT)
            .create(name=f"{s}-{uuid.uuid4().hex[:6]}", type_name="tally", config={})
            .id
            for s in "abc"
        }
        store = WorkflowRepository(session, TENANT)
        workflow = store.create(
            name=uuid.uuid4().hex,
            steps=[
                {"id": "a", "agent_id": agents["a"], "input": {"text": "A"}},
                {"id": "b", "agent_id": agents["b"], "input": {"text": "B"}},
                {
                    "id": "c",
                    "agent_id": agents["c"],
                    "input": {},
                    "inputs_from": {"first": "a", "second": "b"},
                },
            ],
        )
        tasks = {s: str(uuid.uuid4()) for s in "abc"}
        run = store.create_run(workflow, tasks)
        return run.id, tasks, agents


def _step(env: AgentEnvironment, run_id: str, step: str, task_id: str) -> dict[str, Any]:
    return run_workflow_step(
        env,
        TYPES,
        TENANT,
        WorkflowStepPayload(run_id=run_id, step_id=step),
        task_id=task_id,
        report=lambda *_: None,
    )


def _runs_of(env: AgentEnvironment, agent_id: str) -> int:
    return int(env.redis.get(f"tally:{agent_id}") or 0)


def _state(env: AgentEnvironment, run_id: str) -> tuple[str, Any, dict[str, str]]:
    with env.sessions() as session:
        store = WorkflowRepository(session, TENANT)
        run = store.get_run(run_id)
        assert run is not None
        return run.status, run.error, {k: v.status for k, v in store.steps(run_id).items()}


def test_a_step_gets_its_upstream_outputs_and_runs_once_when_delivered_twice(
    env: AgentEnvironment,
) -> None:
    run_id, tasks, agents = _fan_in(env)
    assert _step(env, run_id, "a", tasks["a"]) == {"said": "A"}
    with pytest.raises(TaskFailure, match="started before step 'b' succeeded"):
        _step(env, run_id, "c", tasks["c"])
    assert _step(env, run_id, "b", tasks["b"]) == {"said": "B"}
    assert _step(env, run_id, "c", tasks["c"]) == {"said": "A+B"}
    assert _state(env, run_id)[0] == "succeeded"
    # Delivered again (at least once): the stored output, and the agent does not run.
    assert _step(env, run_id, "a", tasks["a"]) == {"said": "A"}
    assert _step(env, run_id, "c", tasks["c"]) == {"said": "A+B"}
    assert [_runs_of(env, agents[s]) for s in "abc"] == [1, 1, 1]
    # Each step is a run of its agent, under its task's id.
    with env.sessions() as session:
        runs, _ = AgentRepository(session, TENANT).runs(agents["c"], limit=5, cursor=None)
        assert [r.id for r in runs] == [tasks["c"]]
    with pytest.raises(TaskFailure, match="is not the task of step"):
        _step(env, run_id, "a", str(uuid.uuid4()))


def test_a_failed_step_fails_its_run_and_a_resume_runs_only_what_did_not_succeed(
    env: AgentEnvironment,
) -> None:
    run_id, tasks, agents = _fan_in(env)
    payload = WorkflowStepPayload(run_id=run_id, step_id="b")
    (record,) = record_calls(env.settings, TENANT, [StepTask(tasks["c"], run_id, "c", agents["c"])])
    keys, args = record.keys_and_args()
    assert env.redis.register_script(SUBMIT_LUA)(keys=keys, args=args)[0] == "created"
    assert env.redis.hget(task_key(tasks["c"]), "status") == "queued"
    end_workflow_step(env, TENANT, payload, task_id=tasks["b"], status="failed", message="boom")
    status, error, steps = _state(env, run_id)
    assert status == "failed"
    assert error == {"step": "b", "message": "step 'b' failed: boom"}
    # c (a later level) is cancelled, record and all; a, sent beside b, may still run.
    assert steps == {"a": "queued", "b": "failed", "c": "cancelled"}
    assert env.redis.hget(task_key(tasks["c"]), "status") == "cancelled"
    with env.sessions.begin() as session, pytest.raises(ConflictError, match="still queued"):
        to_resume(session, TENANT, run_id)
    assert _step(env, run_id, "a", tasks["a"]) == {"said": "A"}
    assert _state(env, run_id)[0] == "failed"

    with env.sessions.begin() as session:
        again = to_resume(session, TENANT, run_id)
        assert again == ["b", "c"]
        new = {s: str(uuid.uuid4()) for s in again}
        run = prepare_resume(session, TENANT, run_id, new)
        assert (run.status, run.attempt, run.error) == ("queued", 2, None)
        rows = WorkflowRepository(session, TENANT).steps(run_id)
        assert {s: (r.status, r.attempt, r.level) for s, r in rows.items()} == {
            "a": ("succeeded", 1, 0),
            "b": ("queued", 2, 0),
            "c": ("queued", 2, 1),
        }
        assert rows["a"].task_id == tasks["a"]
    with env.sessions.begin() as session, pytest.raises(ConflictError):
        prepare_resume(session, TENANT, run_id, new)
    assert _step(env, run_id, "b", new["b"]) == {"said": "B"}
    assert _step(env, run_id, "c", new["c"]) == {"said": "A+B"}
    assert _state(env, run_id)[0] == "succeeded"
    assert [_runs_of(env, agents[s]) for s in "abc"] == [1, 1, 1]


def test_a_cancelled_run_runs_no_more_steps(env: AgentEnvironment) -> None:
    run_id, tasks, agents = _fan_in(env)
    _step(env, run_id, "a", tasks["a"])
    with env.sessions.begin() as session:
        assert sorted(cancel_run(session, TENANT, run_id)) == sorted([tasks["b"], tasks["c"]])
    status, error, steps = _state(env, run_id)
    assert (status, error["step"]) == ("cancelled", None)
    assert steps == {"a": "succeeded", "b": "cancelled", "c": "cancelled"}
    with pytest.raises(TaskFailure, match="does not run"):
        _step(env, run_id, "b", tasks["b"])
    assert _runs_of(env, agents["b"]) == 0
    with env.sessions.begin() as session, pytest.raises(ConflictError):
        cancel_run(session, TENANT, run_id)
