"""Monitoring rules: what a configuration may say, and how a reading is judged."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from aia_workers.agents.builtin.monitoring import (
    MonitoringAgent,
    MonitoringConfig,
    MonitoringInput,
    Rule,
    RuleState,
    judge,
)
from aia_workers.agents.signals import Reading


def _rule(**kw) -> Rule:
    fields = {"name": "r", "signal": "queue_depth", "queue": "ml", "op": "gt", "threshold": 10}
    return Rule.model_validate({**fields, **kw})


@pytest.mark.parametrize(
    ("op", "value", "state"),
    [
        ("gt", 11, RuleState.FIRING),
        ("gt", 10, RuleState.OK),
        ("ge", 10, RuleState.FIRING),
        ("ge", 9.5, RuleState.OK),
        ("lt", 9, RuleState.FIRING),
        ("lt", 10, RuleState.OK),
        ("le", 10, RuleState.FIRING),
        ("le", 10.5, RuleState.OK),
    ],
)
def test_each_operator_compares_the_value_with_the_threshold(
    op: str, value: float, state: RuleState
) -> None:
    verdict = judge(_rule(op=op), Reading(value))
    assert verdict.state is state
    assert verdict.value == value


def test_no_value_is_no_data() -> None:
    verdict = judge(_rule(), Reading(None, detail={"reason": "message ages need a Redis broker"}))
    assert verdict.state is RuleState.NO_DATA
    assert verdict.detail == {"reason": "message ages need a Redis broker"}


def test_a_rate_on_too_few_samples_is_no_data_however_high() -> None:
    rule = _rule(signal="failure_rate", queue=None, op="gt", threshold=0.2, min_samples=5)
    assert judge(rule, Reading(1.0, samples=4)).state is RuleState.NO_DATA
    assert judge(rule, Reading(1.0, samples=5)).state is RuleState.FIRING
    assert judge(rule, Reading(0.1, samples=50)).state is RuleState.OK
    # Without min_samples a rate needs ten ended tasks.
    default = _rule(signal="failure_rate", queue=None, op="gt", threshold=0.2)
    assert judge(default, Reading(1.0, samples=9)).state is RuleState.NO_DATA
    assert default.window == 3600


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"queue": None}, "queue_depth needs a queue"),
        ({"queue": "nope"}, "queue"),
        ({"signal": "drifted_models"}, "queue applies to queue signals only"),
        ({"task_type": "ml.train"}, "task_type applies to failure_rate only"),
        ({"window_seconds": 60}, "window_seconds applies to"),
        ({"min_samples": 3}, "min_samples applies to failure_rate only"),
        (
            {"signal": "failure_rate", "queue": None, "threshold": 20},
            "a share between 0 and 1",
        ),
        ({"op": "eq"}, "op"),
        ({"name": ""}, "name"),
        ({"severity": "high"}, "severity"),
    ],
)
def test_a_rule_that_does_not_fit_its_signal_is_refused(fields: dict, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _rule(**fields)
    assert says in str(caught.value)


def test_rule_names_are_unique_and_a_config_has_rules() -> None:
    with pytest.raises(ValidationError, match="two rules are named 'r'"):
        MonitoringConfig.model_validate({"rules": [_rule().model_dump(), _rule().model_dump()]})
    with pytest.raises(ValidationError):
        MonitoringConfig.model_validate({"rules": []})


def test_a_run_s_rules_replace_configured_ones_by_name_and_add_others() -> None:
    config = MonitoringConfig(rules=[_rule(name="a"), _rule(name="b", threshold=5)])
    agent = MonitoringAgent(config)
    inputs = MonitoringInput(rules=[_rule(name="b", threshold=50), _rule(name="c")])
    rules = agent.rules(inputs)
    assert [(r.name, r.threshold) for r in rules] == [("a", 10), ("b", 50), ("c", 10)]
    assert agent.rules(MonitoringInput()) == config.rules


def test_an_alert_line_says_the_rule_and_its_value() -> None:
    rule = _rule(name="ml backlog", op="ge", threshold=100)
    assert rule.describe(120) == "ml backlog: queue_depth of queue ml is 120 (>= 100 fires)"
    rate = _rule(signal="failure_rate", queue=None, task_type="ml.train", threshold=0.25)
    assert rate.describe(None).endswith("of ml.train over 3600 s is no value (> 0.25 fires)")


def test_the_schemas_list_for_the_api() -> None:
    schemas = MonitoringAgent.schemas()
    rule = schemas["config"]["$defs"]["Rule"]
    assert set(rule["required"]) == {"name", "signal", "op", "threshold"}
    assert schemas["input"]["properties"]["dry_run"]["default"] is False
    assert MonitoringAgent.name == "monitoring"


def test_the_module_is_light_at_import() -> None:
    # The API imports every type to list its schemas: no database or Redis client,
    # and nothing numeric, until a run.
    code = (
        "import sys, aia_workers.agents.builtin.monitoring;"
        "heavy = {'sqlalchemy', 'redis', 'kombu', 'celery', 'numpy', 'httpx'};"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
