"""A "third-party" plugin for the e2e stack: copied into a directory of its own as the
package ``aia_e2e_agents``, with a dist-info declaring its types as ``aia.agents`` entry points.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aia_workers.agents.contracts import AgentContext, AgentType


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


class ClockAgent(AgentType[ClockConfig, ClockInput]):
    """Works in slow steps and says when it started and ended; notes its process in
    Redis (``aia-e2e:clock:<run id>``) as it starts, so a test can find and kill it."""

    name = "clock"
    summary = "Sleeps in steps; returns when it started and ended."
    config_model = ClockConfig
    input_model = ClockInput

    def run(self, inputs: ClockInput, ctx: AgentContext) -> dict[str, Any]:
        started = time.time()
        ctx.env.redis.set(f"aia-e2e:clock:{ctx.run_id}", os.getpid(), ex=600)
        for i in range(inputs.steps):
            ctx.checkpoint()
            time.sleep(self.config.step_seconds)
            ctx.progress(i + 1, inputs.steps)
        return {"started": started, "ended": time.time(), "pid": os.getpid()}
