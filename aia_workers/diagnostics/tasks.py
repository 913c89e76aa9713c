"""Celery adapters for the diagnostics task types."""

from __future__ import annotations

from typing import Any

from celery import Task

from aia_workers.backbone.catalog import get_task_type
from aia_workers.backbone.tasking import aia_task, progress_reporter
from aia_workers.diagnostics.crash import crash_process
from aia_workers.diagnostics.payloads import CrashPayload, SleepPayload
from aia_workers.diagnostics.sleep import sleep_in_steps

__all__ = ["sleep", "worker_crash"]


@aia_task(get_task_type("diagnostics.sleep"))
def sleep(self: Task, payload: dict[str, Any], tenant: str) -> dict[str, Any]:
    params = SleepPayload.model_validate(payload)
    return sleep_in_steps(
        params.seconds,
        params.steps,
        fail=params.fail,
        report=progress_reporter(self),
        attempt=self.request.retries,
        transient_failures=params.transient_failures,
    )


@aia_task(get_task_type("diagnostics.worker_crash"))
def worker_crash(self: Task, payload: dict[str, Any], tenant: str) -> None:
    crash_process(CrashPayload.model_validate(payload).mode)
