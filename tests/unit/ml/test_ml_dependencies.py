"""ML announces through the sink it is given; it does not import the webhooks package."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_no_ml_module_imports_webhooks_code() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "aia_workers" / "ml").rglob("*.py")
        if re.search(r"^\s*(from|import)\s+aia_workers\.webhooks\b", path.read_text(), re.M)
    ]
    assert offenders == []


def test_importing_the_registry_loads_no_webhooks_module() -> None:
    code = (
        "import sys, aia_workers.ml.registry;"
        "print(','.join(m for m in sys.modules if m.startswith('aia_workers.webhooks')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
