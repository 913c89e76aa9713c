"""The Grafana dashboards in ops/grafana are well formed and query only metrics AIA exports.

The names come from the code that exports them: the API's registry
(``ApiMetrics``), the exporter's task metrics (``TaskMetrics``) and the queue
gauges it reads at each scrape (``QueueGauges``, collected here from a real
Redis database), plus Prometheus's own ``up``. A panel that names anything
else would stay empty on every AIA deployment.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from aia_api.ops.metrics import ApiMetrics
from aia_workers.backbone.states import Queue
from aia_workers.settings import Settings
from aia_workers.telemetry.queue_gauges import QueueGauges
from aia_workers.telemetry.task_metrics import TaskMetrics

GRAFANA = Path(__file__).resolve().parents[3] / "ops" / "grafana"
DASHBOARDS = sorted(GRAFANA.glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

_SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
_KEYWORDS |= {"and", "or", "unless", "inf", "nan"}


def _sample_names(families: Iterable[Metric]) -> set[str]:
    names: set[str] = set()
    for family in families:
        names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
    return names


@pytest.fixture
def exported(redis_url: str, tmp_path: Path) -> set[str]:
    task_registry = CollectorRegistry()
    TaskMetrics(task_registry)
    settings = Settings(data_home=tmp_path, redis_url=redis_url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        gauges = list(QueueGauges(settings, client, [q.value for q in Queue]).collect())
    finally:
        client.close()
    names = _sample_names(ApiMetrics().registry.collect())
    names |= _sample_names(task_registry.collect())
    names |= _sample_names(gauges)
    # Every family QueueGauges has, so a Redis that did not answer cannot shrink the list.
    assert {"aia_workers_online", "aia_queue_depth", "aia_queue_oldest_age_seconds"} <= names
    return names | {"up"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a close reading, not a parser)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", text):
        if match.group(1).lower() not in _KEYWORDS:
            names.add(match.group(1))
    return names


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_the_reading_of_promql_finds_metric_names() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, queue) (rate(aia_worker_task_runtime_seconds_bucket"
        '{queue=~"$queue", state="fa iled"}[$__rate_interval]))) > on (queue) group_left () '
        "max by (queue) (aia:limit) or vector(0) and up offset 5m"
    )
    assert metric_names(expr) == {"aia_worker_task_runtime_seconds_bucket", "aia:limit", "up"}


def test_there_are_dashboards() -> None:
    assert {p.name for p in DASHBOARDS} >= {
        "aia-api.json",
        "aia-queues.json",
        "aia-ml-webhooks.json",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_a_dashboard_is_well_formed(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard["title"]
    assert dashboard["uid"]
    assert isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in _panels(dashboard):
        where = f"{path.name}: {panel.get('title')!r}"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, where
        assert grid["h"] > 0, where
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, where
        assert panel["targets"], f"{where} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in panel["targets"]:
            assert target["expr"].strip(), where
            assert target.get("datasource", DATASOURCE) == DATASOURCE, where


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_a_dashboard_queries_only_exported_metrics(path: Path, exported: set[str]) -> None:
    dashboard = _load(path)
    unknown: dict[str, set[str]] = {}
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            names = metric_names(target["expr"])
            assert names, f"{panel['title']!r}: no metric in {target['expr']!r}"
            if names - exported:
                unknown[panel["title"]] = names - exported
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", text)
            assert found, f"variable {variable['name']}: {text!r}"
            if found.group(1) not in exported:
                unknown[f"${variable['name']}"] = {found.group(1)}
    assert unknown == {}


def test_every_query_parses(promtool: str, tmp_path: Path) -> None:
    # promtool parses PromQL only inside rule files: each query becomes a
    # recording rule, with Grafana's variables given values.
    rules: list[dict[str, str]] = []
    for path in DASHBOARDS:
        for panel in _panels(_load(path)):
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", "5m").replace("$queue", ".+")
                rules.append({"record": f"dashboard:query{len(rules)}", "expr": expr})
    rule_file = tmp_path / "dashboards.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
