"""A "third-party" plugin for the e2e stack: copied into a directory of its own as the
package ``aia_e2e_agents``, with a dist-info declaring its types as ``aia.agents`` entry points.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aia_workers.agents.contracts import AgentContext, AgentInputError, AgentType
from aia_workers.errors import TransientError


class EchoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(default="", max_length=20)
    repeat: int = Field(default=1, ge=1, le=5)


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=200)


class EchoAgent(AgentType[EchoConfig, EchoInput]):
    """Says its input back, with its prefix, ``repeat`` times."""

    name = "echo"
    summary = "Says the input back, prefixed and repeated."
    config_model = EchoConfig
    input_model = EchoInput

    def run(self, inputs: EchoInput, ctx: AgentContext) -> dict[str, Any]:
        words = []
        for i in range(self.config.repeat):
            ctx.checkpoint()
            words.append(self.config.prefix + inputs.text)
            ctx.progress(i + 1, self.config.repeat, f"said it {i + 1} times")
        return {"echo": " ".join(words), "tenant": ctx.tenant, "agent_id": ctx.agent_id}


class StepsConfig(BaseModel):
    step_seconds: float = Field(default=0.2, gt=0, le=5)


class StepsInput(BaseModel):
    steps: int = Field(ge=1, le=1000)


class StepsAgent(AgentType[StepsConfig, StepsInput]):
    """Works in slow steps, noting each in Redis (``aia-e2e:steps:<run id>``) and its exit."""

    name = "steps"
    summary = "Sleeps in steps, checking for a cancel between them."
    config_model = StepsConfig
    input_model = StepsInput

    def run(self, inputs: StepsInput, ctx: AgentContext) -> dict[str, Any]:
        notes = f"aia-e2e:steps:{ctx.run_id}"
        try:
            for i in range(inputs.steps):
                ctx.checkpoint()
                time.sleep(self.config.step_seconds)
                ctx.env.redis.rpush(notes, f"step {i + 1}")
                ctx.progress(i + 1, inputs.steps)
            return {"steps": inputs.steps}
        finally:
            # Reached only by a run that stops itself, never by a killed process.
            ctx.env.redis.rpush(notes, "exited")


class ClockConfig(BaseModel):
    step_seconds: float = Field(default=0.1, gt=0, le=5)


class ClockInput(BaseModel):
    steps: int = Field(default=10, ge=1, le=1000)
    # Attempts that fail with a retryable error first, as a database outage makes them.
    transient_failures: int = Field(default=0, ge=0, le=3)


class ClockAgent(AgentType[ClockConfig, ClockInput]):
    """Works in slow steps and says when it started and ended; notes its process in
    Redis (``aia-e2e:clock:<run id>``) as it starts, so a test can find and kill it."""

    name = "clock"
    summary = "Sleeps in steps; returns when it started and ended."
    config_model = ClockConfig
    input_model = ClockInput

    def run(self, inputs: ClockInput, ctx: AgentContext) -> dict[str, Any]:
        attempt = ctx.env.redis.incr(f"aia-e2e:clock-attempts:{ctx.run_id}")
        if attempt <= inputs.transient_failures:
            raise TransientError(f"attempt {attempt} fails, as asked")
        started = time.time()
        ctx.env.redis.set(f"aia-e2e:clock:{ctx.run_id}", os.getpid(), ex=600)
        for i in range(inputs.steps):
            ctx.checkpoint()
            time.sleep(self.config.step_seconds)
            ctx.progress(i + 1, inputs.steps)
        return {"started": started, "ended": time.time(), "pid": os.getpid()}


class CombineConfig(BaseModel):
    separator: str = Field(default=" & ", max_length=10)


class CombineInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first: dict[str, Any]
    second: dict[str, Any]


class CombineAgent(AgentType[CombineConfig, CombineInput]):
    """Joins the ``echo`` of two earlier outputs: a workflow's fan-in."""

    name = "combine"
    summary = "Joins what two earlier runs said."
    config_model = CombineConfig
    input_model = CombineInput

    def run(self, inputs: CombineInput, ctx: AgentContext) -> dict[str, Any]:
        ctx.checkpoint()
        said = [str(inputs.first.get("echo")), str(inputs.second.get("echo"))]
        ctx.progress(1, 1)
        return {"combined": self.config.separator.join(said), "parts": said}


class FailOnceConfig(BaseModel):
    pass


class FailOnceInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    upstream: dict[str, Any] | None = None


class FailOnceAgent(AgentType[FailOnceConfig, FailOnceInput]):
    """Fails its agent's first run (noted in Redis, ``aia-e2e:failed-once:<agent id>``),
    then says its input back: a fault fixed between a run and its resume."""

    name = "fail_once"
    summary = "Fails the first time, then says its input back."
    config_model = FailOnceConfig
    input_model = FailOnceInput

    def run(self, inputs: FailOnceInput, ctx: AgentContext) -> dict[str, Any]:
        if ctx.env.redis.set(f"aia-e2e:failed-once:{ctx.agent_id}", ctx.run_id, nx=True):
            raise AgentInputError("failing once, as this agent type does; run it again")
        text = inputs.text or str((inputs.upstream or {}).get("echo"))
        return {"echo": f"{text}, again"}


class InboxInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ack: bool = True
    fail: bool = False


class InboxAgent(AgentType[EchoConfig, InboxInput]):
    """Reads its mailbox and says what it read; acks it itself (or not), then may fail."""

    name = "inbox"
    summary = "Returns the messages its inbox handed it, and acks them."
    config_model = EchoConfig
    input_model = InboxInput
    # It acks for itself: a run told not to leaves its messages pending.
    acks_on_success = False

    def run(self, inputs: InboxInput, ctx: AgentContext) -> dict[str, Any]:
        read = ctx.inbox()
        acked = ctx.ack([m.id for m in read]) if inputs.ack else []
        if inputs.fail:
            raise RuntimeError(f"failing on purpose after reading {len(read)} messages")
        return {
            "read": [
                {
                    "id": m.id,
                    "sender": m.sender,
                    "seq": m.seq,
                    "body": m.body,
                    "deliveries": m.deliveries,
                }
                for m in read
            ],
            "acked": acked,
        }


class RelayInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=200, description="An agent's id or name.")
    bodies: list[dict[str, Any]] = Field(min_length=1, max_length=20)


class RelayAgent(AgentType[EchoConfig, RelayInput]):
    """Sends each of its input's bodies, in order, to another agent."""

    name = "relay"
    summary = "Sends messages to another agent."
    config_model = EchoConfig
    input_model = RelayInput

    def run(self, inputs: RelayInput, ctx: AgentContext) -> dict[str, Any]:
        sent = []
        for body in inputs.bodies:
            ctx.checkpoint()
            sent.append(ctx.send(inputs.to, body))
        return {"sent": sent}
