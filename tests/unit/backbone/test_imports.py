"""What importing AIA's modules costs a process: which libraries, Celery apps and signal handlers.

Each check runs in a fresh interpreter, since the test process has long
imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]

_HEAVY = ("torch", "sklearn", "statsmodels", "nltk", "numpy", "pandas")

# A fresh process reports what it loaded: heavy libraries, Celery apps, and
# the receivers connected to each of Celery's signals.
_REPORT = """
import json, sys
from celery import _state, signals
from celery.utils.dispatch import Signal

def report():
    receivers = {
        name: len(signal.receivers)
        for name, signal in vars(signals).items()
        if isinstance(signal, Signal) and signal.receivers
    }
    return {
        "heavy": [m for m in HEAVY if m in sys.modules],
        "apps": len(_state._apps),
        "receivers": receivers,
        "modules": len(sys.modules),
    }
"""

# `import aia_api.app, aia_api.cli` and the module the API's lifespan imports
# loaded 1,020 modules when importing aia_workers built the worker's Celery app,
# 1,018 since; 1,203 with OpenTelemetry installed, whose SDK redis-py imports
# (redis.observability, 61 modules) before AIA's tracing adds its 9. The bound
# leaves room to grow, not room for numpy's hundred modules or pandas' five hundred.
_API_MODULES_BOUND = 1260


# Packages of agents' work, imported inside their agent type's ``run`` on a worker.
_AGENT_WORK = (
    "aia_workers.agents.analysis",
    "aia_workers.agents.content",
    "aia_workers.agents.search",
)


def _run(code: str) -> dict[str, Any]:
    script = f"HEAVY = {_HEAVY!r}\n{_REPORT}\n{code}"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _light_modules() -> list[str]:
    """Every module of aia_workers but task bodies, the worker's app and numeric domain code.

    ML and drift compute with numpy and pandas; what the API may import of them
    lives in their ``contracts`` packages. An agent type's module stays light and
    is checked; the package doing its work is imported by its ``run`` only.
    """
    names = []
    for path in sorted((ROOT / "aia_workers").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if name.rsplit(".", 1)[-1] in ("tasks", "tasking", "celery") or ".migrations" in name:
            continue
        domain = next((d for d in ("ml", "drift") if name.startswith(f"aia_workers.{d}.")), None)
        if domain and not name.startswith(f"aia_workers.{domain}.contracts"):
            continue
        if name.startswith(_AGENT_WORK):
            continue
        names.append(name)
    return names


def test_importing_aia_workers_and_its_contracts_builds_no_celery_app() -> None:
    modules = _light_modules()
    assert {
        "aia_workers",
        "aia_workers.backbone.catalog",
        "aia_workers.backbone.states",
        "aia_workers.backbone.events",
        "aia_workers.backbone.observability",
        "aia_workers.errors",
        "aia_workers.settings",
        "aia_workers.ml.contracts.payloads",
        "aia_workers.webhooks.catalog",
    } <= set(modules)
    code = (
        "import importlib\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(report()))\n"
    )
    loaded = _run(code)
    assert loaded["apps"] == 0
    assert loaded["receivers"] == {}
    assert loaded["heavy"] == []


def test_importing_the_api_loads_no_heavy_library_and_no_worker_handler() -> None:
    code = (
        "import aia_api.app, aia_api.cli, aia_workers.backbone.catalog\n"
        "import aia_workers.backbone.app\n"
        "imported = report()\n"
        "aia_workers.backbone.app.create_celery_app()\n"
        "print(json.dumps({'imported': imported, 'enqueue_app': report()}))\n"
    )
    loaded = _run(code)
    imported, enqueue_app = loaded["imported"], loaded["enqueue_app"]
    print(f"an API process loads {imported['modules']} modules")
    assert imported["heavy"] == []
    assert imported["apps"] == 0
    assert imported["receivers"] == {}
    assert imported["modules"] < _API_MODULES_BOUND
    # The app the API enqueues with connects none of the worker's handlers.
    assert enqueue_app["apps"] == 1
    assert enqueue_app["receivers"] == {}


def test_the_worker_app_connects_its_handlers() -> None:
    loaded = _run("import aia_workers.celery\nprint(json.dumps(report()))\n")
    assert loaded["apps"] == 1
    assert {"task_success", "task_failure", "task_revoked", "celeryd_init"} <= set(
        loaded["receivers"]
    )


def test_the_webhooks_worker_never_loads_ml_libraries() -> None:
    code = (
        "import sys, aia_workers.celery, aia_workers.webhooks.tasks;"
        "heavy = [m for m in ('torch', 'sklearn', 'statsmodels', 'nltk') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
