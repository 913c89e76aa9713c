"""The monitoring agent: rules over AIA's own signals, and an ``alert.fired`` webhook per change.

An agent's configuration is a list of rules, each comparing one signal
(``aia_workers.agents.signals``) with a threshold. A run evaluates every rule
and returns each one's value and state; a rule whose state changed since the
last run (ok to firing, or firing to ok, announced as ``resolved``) is
announced through the webhook outbox in the transaction that records the new
state (``aia_workers.agents.alerts``), so a schedule that runs it every minute
alerts once per change, not once per minute.

A rule with nothing to judge by (no task ended in its window, fewer than
``min_samples``, a signal that could not be read) is ``no_data`` and keeps the
state it had: a quiet minute neither raises nor clears an alert.

Light: pydantic and the standard library at import; the readers and the
state store are imported by ``run``.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from aia_workers.agents.contracts import AgentContext, AgentType
from aia_workers.backbone.states import Queue

if TYPE_CHECKING:
    from aia_workers.agents.signals import Reading, Signals

__all__ = [
    "MonitoringAgent",
    "MonitoringConfig",
    "MonitoringInput",
    "Op",
    "Rule",
    "RuleState",
    "Signal",
    "Verdict",
    "judge",
]

log = logging.getLogger(__name__)

DEFAULT_WINDOW_SECONDS = 3600
DEFAULT_MIN_SAMPLES = 10
MAX_RULES = 100


class Signal(StrEnum):
    QUEUE_DEPTH = "queue_depth"
    OLDEST_AGE_SECONDS = "oldest_age_seconds"
    FAILURE_RATE = "failure_rate"
    DRIFTED_MODELS = "drifted_models"
    WEBHOOK_DEAD_LETTERS = "webhook_dead_letters"


class Op(StrEnum):
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"


class RuleState(StrEnum):
    OK = "ok"
    FIRING = "firing"
    # Nothing to judge by: the rule keeps the state it had.
    NO_DATA = "no_data"


_COMPARE: Mapping[Op, Callable[[float, float], bool]] = {
    Op.GT: operator.gt,
    Op.GE: operator.ge,
    Op.LT: operator.lt,
    Op.LE: operator.le,
}
_SYMBOL = {Op.GT: ">", Op.GE: ">=", Op.LT: "<", Op.LE: "<="}
_QUEUE_SIGNALS = frozenset({Signal.QUEUE_DEPTH, Signal.OLDEST_AGE_SECONDS})
_WINDOWED = frozenset({Signal.FAILURE_RATE, Signal.WEBHOOK_DEAD_LETTERS})

RuleName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class Rule(BaseModel):
    """One condition on one signal: the rule fires while ``value <op> threshold`` holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: RuleName = Field(description="Unique in the agent; names the alert.")
    signal: Signal
    queue: Queue | None = Field(
        default=None, description="The queue (queue_depth and oldest_age_seconds only)."
    )
    task_type: str | None = Field(
        default=None,
        max_length=128,
        description="failure_rate of this task type only; every type when absent.",
    )
    window_seconds: int | None = Field(
        default=None,
        ge=1,
        le=30 * 86_400,
        description="failure_rate: tasks that ended this long ago or since (default "
        f"{DEFAULT_WINDOW_SECONDS}); webhook_dead_letters: messages that gave up in it "
        "(default: every one not resent).",
    )
    op: Op
    threshold: float
    min_samples: int | None = Field(
        default=None,
        ge=1,
        description="failure_rate: fewer ended tasks than this in the window is no_data "
        f"(default {DEFAULT_MIN_SAMPLES}).",
    )

    @model_validator(mode="after")
    def _fields_fit_the_signal(self) -> Rule:
        signal = self.signal
        if signal in _QUEUE_SIGNALS and self.queue is None:
            raise ValueError(f"rule {self.name!r}: {signal} needs a queue")
        if signal not in _QUEUE_SIGNALS and self.queue is not None:
            raise ValueError(f"rule {self.name!r}: queue applies to queue signals only")
        if self.task_type is not None and signal is not Signal.FAILURE_RATE:
            raise ValueError(f"rule {self.name!r}: task_type applies to failure_rate only")
        if self.min_samples is not None and signal is not Signal.FAILURE_RATE:
            raise ValueError(f"rule {self.name!r}: min_samples applies to failure_rate only")
        if self.window_seconds is not None and signal not in _WINDOWED:
            raise ValueError(
                f"rule {self.name!r}: window_seconds applies to failure_rate and "
                "webhook_dead_letters only"
            )
        if signal is Signal.FAILURE_RATE and not 0 <= self.threshold <= 1:
            raise ValueError(
                f"rule {self.name!r}: a failure_rate threshold is a share between 0 and 1 "
                f"(0.2 for 20 %), not {self.threshold}"
            )
        return self

    @property
    def window(self) -> int | None:
        """The window in seconds the signal is read over (None: not windowed)."""
        if self.signal is Signal.FAILURE_RATE:
            return self.window_seconds or DEFAULT_WINDOW_SECONDS
        return self.window_seconds

    @property
    def samples_needed(self) -> int:
        if self.signal is Signal.FAILURE_RATE:
            return self.min_samples or DEFAULT_MIN_SAMPLES
        return 0

    def describe(self, value: float | None) -> str:
        """The rule and its value in one line, for people reading an alert."""
        subject = str(self.signal)
        if self.queue is not None:
            subject += f" of queue {self.queue}"
        if self.task_type is not None:
            subject += f" of {self.task_type}"
        if self.window is not None:
            subject += f" over {self.window} s"
        shown = "no value" if value is None else f"{value:g}"
        return f"{self.name}: {subject} is {shown} ({_SYMBOL[self.op]} {self.threshold:g} fires)"


def _unique_names(rules: list[Rule]) -> list[Rule]:
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ValueError(f"two rules are named {rule.name!r}; names must be unique")
        seen.add(rule.name)
    return rules


class MonitoringConfig(BaseModel):
    """A monitoring agent: the rules each run evaluates."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(min_length=1, max_length=MAX_RULES)

    @model_validator(mode="after")
    def _names(self) -> MonitoringConfig:
        _unique_names(self.rules)
        return self


class MonitoringInput(BaseModel):
    """A run: nothing, or rules that replace the configured ones of the same name for this run."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(
        default_factory=list,
        max_length=MAX_RULES,
        description="Replace the configured rule of the same name, or add one, for this run.",
    )
    dry_run: bool = Field(
        default=False,
        description="Evaluate and report only: no state is recorded and no alert is sent.",
    )

    @model_validator(mode="after")
    def _names(self) -> MonitoringInput:
        _unique_names(self.rules)
        return self


@dataclass(frozen=True, slots=True)
class Verdict:
    """A rule judged on one reading: ``state`` is ok, firing or no_data."""

    rule: Rule
    value: float | None
    samples: int | None
    state: RuleState
    detail: Mapping[str, Any]


def judge(rule: Rule, reading: Reading) -> Verdict:
    """Compare ``reading`` with ``rule``; no_data when there is no value or too few samples."""
    value = reading.value
    detail = dict(reading.detail)
    if value is None:
        state = RuleState.NO_DATA
    elif reading.samples is not None and reading.samples < rule.samples_needed:
        detail["reason"] = f"{reading.samples} samples, fewer than {rule.samples_needed}"
        state = RuleState.NO_DATA
    elif _COMPARE[rule.op](value, rule.threshold):
        state = RuleState.FIRING
    else:
        state = RuleState.OK
    return Verdict(rule, value, reading.samples, state, detail)


def read(signals: Signals, rule: Rule) -> Reading:
    """The reading ``rule`` is judged on."""
    match rule.signal:
        case Signal.QUEUE_DEPTH:
            return signals.queue_depth(str(rule.queue))
        case Signal.OLDEST_AGE_SECONDS:
            return signals.oldest_age_seconds(str(rule.queue))
        case Signal.FAILURE_RATE:
            return signals.failure_rate(float(rule.window or 0), rule.task_type)
        case Signal.DRIFTED_MODELS:
            return signals.drifted_models()
        case Signal.WEBHOOK_DEAD_LETTERS:
            window = rule.window
            return signals.webhook_dead_letters(None if window is None else float(window))


class MonitoringAgent(AgentType[MonitoringConfig, MonitoringInput]):
    """Rules over queue depths and waits, failure rates, drift and webhook dead letters."""

    name: ClassVar[str] = "monitoring"
    summary: ClassVar[str] = (
        "Rules over AIA's own signals (queue depth and oldest wait, failure rate by task "
        "type, drifted models, webhook dead letters); alert.fired when a rule starts "
        "firing or is resolved. Run it on a schedule."
    )
    config_model: ClassVar[type[BaseModel]] = MonitoringConfig
    input_model: ClassVar[type[BaseModel]] = MonitoringInput

    def rules(self, inputs: MonitoringInput) -> list[Rule]:
        """The configured rules with this run's replacements and additions."""
        overrides = {rule.name: rule for rule in inputs.rules}
        merged = [overrides.pop(rule.name, rule) for rule in self.config.rules]
        return merged + list(overrides.values())

    def run(self, inputs: MonitoringInput, ctx: AgentContext) -> dict[str, Any]:
        from aia_workers.agents.alerts import record_verdicts
        from aia_workers.agents.signals import Reading, Signals

        env = ctx.env
        rules = self.rules(inputs)
        signals = Signals(
            tenant=ctx.tenant, settings=env.settings, sessions=env.sessions, client=env.redis
        )
        steps = len(rules) + 1
        verdicts: list[Verdict] = []
        for done, rule in enumerate(rules):
            ctx.checkpoint()
            try:
                reading = read(signals, rule)
            except Exception as exc:
                # One signal that cannot be read (Redis or the broker away) leaves
                # its rule as it was; the others are still judged and recorded.
                log.warning("monitoring: rule %r could not read %s", rule.name, rule.signal)
                reading = Reading(None, detail={"error": f"{type(exc).__name__}: {exc}"[:500]})
            verdicts.append(judge(rule, reading))
            ctx.progress(done + 1, steps, f"evaluated {rule.name}")
        ctx.checkpoint()
        previous: Mapping[str, str] = {}
        changed: Mapping[str, str] = {}
        if not inputs.dry_run:
            with env.sessions.begin() as session:
                outcome = record_verdicts(
                    session,
                    tenant=ctx.tenant,
                    agent_id=ctx.agent_id,
                    run_id=ctx.run_id,
                    verdicts=verdicts,
                    events=env.events,
                    now=signals.now,
                    # A run with replacements would forget the configured rules' states.
                    prune=not inputs.rules,
                )
            previous, changed = outcome.previous, outcome.changed
        ctx.progress(steps, steps, "recorded" if not inputs.dry_run else "dry run")
        return {
            "evaluated_at": signals.now.isoformat(),
            "dry_run": inputs.dry_run,
            "rules": [
                _report(v, previous.get(v.rule.name), changed.get(v.rule.name)) for v in verdicts
            ],
            "firing": [v.rule.name for v in verdicts if _firing(v, previous)],
            "alerts": [{"rule": name, "state": state} for name, state in changed.items()],
        }


def _firing(verdict: Verdict, previous: Mapping[str, str]) -> bool:
    if verdict.state is RuleState.NO_DATA:
        return previous.get(verdict.rule.name) == RuleState.FIRING
    return verdict.state is RuleState.FIRING


def _report(verdict: Verdict, previous: str | None, alert: str | None) -> dict[str, Any]:
    rule = verdict.rule
    return {
        "name": rule.name,
        "signal": str(rule.signal),
        "queue": None if rule.queue is None else str(rule.queue),
        "task_type": rule.task_type,
        "window_seconds": rule.window,
        "op": str(rule.op),
        "threshold": rule.threshold,
        "value": verdict.value,
        "samples": verdict.samples,
        "state": str(verdict.state),
        "previous_state": previous,
        "alert": alert,
        "detail": dict(verdict.detail),
    }
