"""The Kubernetes manifests in ops/k8s load, and KEDA scales every worker on its own queue.

No kubectl here: the YAML is read as data, and the ScaledObjects are checked
against the worker Deployments (workers.yaml) and the queues AIA has.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from aia_workers.backbone.states import Queue

K8S = Path(__file__).resolve().parents[3] / "ops" / "k8s"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _of_kind(kind: str, path: Path) -> list[dict[str, Any]]:
    return [doc for doc in _documents(path) if doc["kind"] == kind]


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_a_manifest_loads(path: Path) -> None:
    for doc in _documents(path):
        assert doc.get("apiVersion"), path.name
        assert doc.get("kind"), path.name


def test_the_kustomization_lists_every_manifest() -> None:
    (kustomization,) = _documents(K8S / "kustomization.yaml")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_each_queue_has_one_worker_deployment_and_one_scaled_object() -> None:
    workers = {
        d["metadata"]["labels"]["aia.dev/queue"]: d["metadata"]["name"]
        for d in _of_kind("Deployment", K8S / "workers.yaml")
    }
    scaled = _of_kind("ScaledObject", K8S / "keda-scaledobjects.yaml")
    assert set(workers) == {q.value for q in Queue}
    targets = [s["spec"]["scaleTargetRef"]["name"] for s in scaled]
    assert sorted(targets) == sorted(workers.values())
    for deployment in _of_kind("Deployment", K8S / "workers.yaml"):
        # KEDA owns the count; a replicas field would reset it on every apply.
        assert "replicas" not in deployment["spec"], deployment["metadata"]["name"]


def _queue_of(query: str) -> str:
    found = re.fullmatch(
        r'max\((aia_queue_depth|aia_queue_oldest_age_seconds)\{queue="(\w+)"\}\)( or vector\(0\))?',
        query,
    )
    assert found, f"unexpected KEDA query {query!r}"
    return found.group(2)


def test_a_worker_scales_on_its_own_queues_depth_and_oldest_wait() -> None:
    workers = {
        d["metadata"]["name"]: d["metadata"]["labels"]["aia.dev/queue"]
        for d in _of_kind("Deployment", K8S / "workers.yaml")
    }
    for scaled in _of_kind("ScaledObject", K8S / "keda-scaledobjects.yaml"):
        queue = workers[scaled["spec"]["scaleTargetRef"]["name"]]
        spec = scaled["spec"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        metrics = set()
        for trigger in spec["triggers"]:
            assert trigger["type"] == "prometheus"
            meta = trigger["metadata"]
            assert meta["serverAddress"].startswith("http")
            assert float(meta["threshold"]) > 0
            assert _queue_of(meta["query"]) == queue
            metrics.add(meta["query"].split("{")[0].removeprefix("max("))
        # Deliveries are not AIA tasks: the webhooks queue has no oldest wait to scale on.
        expected = {"aia_queue_depth"}
        if queue != Queue.WEBHOOKS:
            expected.add("aia_queue_oldest_age_seconds")
        assert metrics == expected, queue
