"""``promtool``, for the checks of ops/prometheus and of the dashboards' PromQL.

Debian's ``prometheus`` package has it (``.ci/run`` installs it). Without it
those checks skip, except in CI (``CI=true``), where a skip would let broken
rules through.
"""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must check the alert rules and dashboards")
        pytest.skip(message)
    return found
