"""The Prometheus config and alert rules in ops/prometheus pass promtool (see conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

PROMETHEUS = Path(__file__).resolve().parents[3] / "ops" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts.test.yml"


def _run(promtool: str, *args: str) -> None:
    done = subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def test_the_rules_are_valid(promtool: str) -> None:
    _run(promtool, "check", "rules", RULES.name)


def test_the_config_is_valid_with_its_rule_files(promtool: str) -> None:
    _run(promtool, "check", "config", "prometheus.yml")


def test_the_rule_unit_tests_pass(promtool: str) -> None:
    _run(promtool, "test", "rules", RULE_TESTS.name)


def _alert_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def _checks() -> list[dict[str, Any]]:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    return [check for test in tests for check in test.get("alert_rule_test", [])]


def test_every_alert_is_tested_firing_and_quiet() -> None:
    alerts = _alert_names()
    firing = {check["alertname"] for check in _checks() if check.get("exp_alerts")}
    quiet = {check["alertname"] for check in _checks() if not check.get("exp_alerts")}
    assert alerts, "alerts.yml holds no alert"
    assert alerts - firing == set(), "alerts never shown firing in alerts.test.yml"
    assert alerts - quiet == set(), "alerts never shown quiet (a near miss) in alerts.test.yml"
    assert (firing | quiet) - alerts == set(), "alerts.test.yml tests alerts that do not exist"
