"""The ``diagnostics.sleep`` workload, free of Celery."""

from __future__ import annotations

import time
from typing import Any

from aia_workers.backbone.progress import ProgressReporter
from aia_workers.errors import TaskFailure, TransientError

__all__ = ["sleep_in_steps"]


def sleep_in_steps(
    seconds: float,
    steps: int,
    *,
    fail: bool,
    report: ProgressReporter,
    attempt: int = 0,
    transient_failures: int = 0,
) -> dict[str, Any]:
    """Sleep ``seconds`` in ``steps`` equal parts, reporting progress after each.

    Raises TransientError while ``attempt`` (0 for the first run) is below
    ``transient_failures``, and TaskFailure after the last step when ``fail``
    is true, so callers can see how retries and failures look end to end.
    """
    if attempt < transient_failures:
        raise TransientError(f"transient failure {attempt + 1} of {transient_failures}, on request")
    started = time.monotonic()
    interval = seconds / steps
    for step in range(1, steps + 1):
        if interval:
            time.sleep(interval)
        report(step, steps, f"step {step} of {steps}")
    if fail:
        raise TaskFailure(f"diagnostics.sleep failed on request after {steps} steps (fail=true)")
    return {"slept_seconds": round(time.monotonic() - started, 6), "steps": steps}
