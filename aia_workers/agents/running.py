"""One run of an agent: load it and its type, check the input, call ``run`` with a context.

Plain code, no Celery: ``aia_workers.agents.tasks`` wraps it. Cancellation is
cooperative: the API marks the task's live record cancelled, and the run's
``checkpoint()`` reads that mark (one HGET) between steps and raises
RunCancelled; the record is terminal already, so the task stays cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from aia_workers.agents.contracts import AgentEnvironment, AgentInputError, Message, RunCancelled
from aia_workers.agents.mailbox import RunMailbox
from aia_workers.agents.payloads import AgentRunPayload
from aia_workers.agents.store import AgentRepository
from aia_workers.agents.types import AgentTypes, UnknownAgentTypeError
from aia_workers.backbone.keys import task_key
from aia_workers.backbone.progress import ProgressReporter
from aia_workers.backbone.states import Status
from aia_workers.errors import TaskFailure

__all__ = ["RunContext", "describe_errors", "run_agent"]


@dataclass(slots=True)
class RunContext:
    """The AgentContext of one run: who it runs for, what it may use, progress and cancel."""

    tenant: str
    agent_id: str
    run_id: str
    env: AgentEnvironment
    report: ProgressReporter
    mailbox: RunMailbox = field(init=False)

    def __post_init__(self) -> None:
        self.mailbox = RunMailbox(self.env, self.tenant, self.agent_id, self.run_id)

    def progress(self, current: int, total: int, message: str | None = None) -> None:
        """Report ``current`` of ``total`` steps done; reaches the run's event stream."""
        self.report(current, total, message)

    def checkpoint(self) -> None:
        """Raise RunCancelled if the run was cancelled; call it between steps."""
        status = self.env.redis.hget(task_key(self.run_id), "status")
        if isinstance(status, bytes):
            status = status.decode()
        if status == Status.CANCELLED.value:
            raise RunCancelled(f"run {self.run_id} was cancelled")

    def inbox(self, limit: int = 100) -> list[Message]:
        """The agent's unacknowledged messages, oldest first; see ``aia_workers.agents.mailbox``."""
        return self.mailbox.inbox(limit)

    def ack(self, message_ids: Iterable[str]) -> list[str]:
        """Acknowledge messages of this agent's mailbox; the ids acknowledged now."""
        return self.mailbox.ack(message_ids)

    def send(self, agent: str, body: Mapping[str, Any]) -> str:
        """Send ``body`` to ``agent`` (id or name, this tenant); the message's id."""
        return self.mailbox.send(agent, body)


def describe_errors(exc: ValidationError, prefix: str) -> str:
    """Pydantic's errors as one line, each naming its field under ``prefix``."""
    parts = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        where = ".".join(str(p) for p in (prefix, *err["loc"]))
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def run_agent(
    env: AgentEnvironment,
    types: AgentTypes,
    tenant: str,
    payload: AgentRunPayload,
    *,
    run_id: str,
    report: ProgressReporter,
) -> dict[str, Any]:
    """Run the agent ``payload`` names; its output (a JSON object).

    TaskFailure (a message saying what to change) when the agent is gone, its
    type is not installed here, its configuration no longer validates or the
    input does not; RunCancelled when a checkpoint finds the run cancelled.
    """
    with env.sessions.begin() as session:
        store = AgentRepository(session, tenant)
        agent = store.get(payload.agent_id)
        if agent is None:
            raise TaskFailure(
                f"agent {payload.agent_id} does not exist: it was deleted before this run "
                "started (or never was, in this tenant)"
            )
        store.record_run(run_id, agent.id, payload.input)
        type_name, config = agent.type, agent.config
    try:
        kind = types.get(type_name)
    except UnknownAgentTypeError as exc:
        raise TaskFailure(f"{exc}; install it on the agents workers") from None
    try:
        settings = kind.config_model.model_validate(config)
    except ValidationError as exc:
        # The type changed under a stored configuration (a plugin upgrade).
        raise TaskFailure(
            f"agent {payload.agent_id}'s configuration is no longer valid for type "
            f"{type_name!r} ({describe_errors(exc, 'config')}); change it with "
            f"PATCH /v1/agents/{payload.agent_id}"
        ) from None
    try:
        inputs = kind.input_model.model_validate(payload.input)
    except ValidationError as exc:
        raise AgentInputError(
            f"the input does not suit agent type {type_name!r}: {describe_errors(exc, 'input')}"
        ) from None
    ctx = RunContext(tenant=tenant, agent_id=agent.id, run_id=run_id, env=env, report=report)
    ctx.checkpoint()
    output = _json_object(kind(settings).run(inputs, ctx), type_name)
    if kind.acks_on_success:
        # Only a run that succeeded: what a failed one read goes to the next run again.
        ctx.mailbox.settle()
    return output


def _json_object(output: Any, type_name: str) -> dict[str, Any]:
    if not isinstance(output, dict):
        raise TaskFailure(
            f"agent type {type_name!r} returned {type(output).__name__}, not a JSON object; "
            "its run() must return a dict"
        )
    try:
        # What the task's record and the event stream will carry: JSON, nothing else.
        decoded: dict[str, Any] = orjson.loads(orjson.dumps(output))
    except TypeError as exc:
        raise TaskFailure(
            f"agent type {type_name!r} returned something that is not JSON: {exc}"
        ) from None
    return decoded
