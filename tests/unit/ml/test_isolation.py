"""Training in a forked child: results and progress come back, and a child that misbehaves
(runs past its deadline, allocates past its cap, crashes) fails the run, not this process."""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier

from aia_workers.backbone.progress import ProgressReporter
from aia_workers.errors import TaskFailure
from aia_workers.ml.budget import BudgetExceeded
from aia_workers.ml.contracts.tables import DatasetError
from aia_workers.ml.isolation import (
    TrainingDied,
    TrainingOutOfMemory,
    TrainingStopped,
    Work,
    run_in_child,
)
from aia_workers.ml.memory import data_bytes


def _run(work: Work, *, kill_after: float = 60, memory_mb: int = 0) -> Any:
    seen: list[tuple[int, int, str | None]] = []

    def report(current: int, total: int, message: str | None = None) -> None:
        seen.append((current, total, message))

    summary, model = run_in_child(
        work, budget_seconds=1, kill_after_seconds=kill_after, memory_mb=memory_mb, report=report
    )
    return summary, model, seen


def test_the_summary_model_and_progress_come_back() -> None:
    big = os.urandom(3 * 1024 * 1024)  # several pipe buffers' worth

    def work(report: ProgressReporter) -> tuple[dict[str, Any], bytes]:
        report(1, 2, "half")
        report(2, 2, None)
        return {"pid": os.getpid(), "nan": float("nan")}, big

    summary, model, seen = _run(work)
    assert model == big
    assert summary["pid"] != os.getpid()
    assert seen == [(1, 2, "half"), (2, 2, None)]


@pytest.mark.parametrize(
    ("error", "raised", "says"),
    [
        (DatasetError("no column 'x'", column="x", row=3), DatasetError, "no column 'x'"),
        (ValueError("max_trials must be >= 1"), ValueError, "max_trials"),
        (BudgetExceeded("late"), TrainingStopped, "no smaller model to fall back on"),
        (MemoryError("Unable to allocate 9 GiB"), TrainingOutOfMemory, "Unable to allocate"),
        (
            RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 8 GB"),
            TrainingOutOfMemory,
            "AIA_ML_TASK_MEMORY_MB",
        ),
        (KeyError("surprise"), TaskFailure, "KeyError: 'surprise'"),
    ],
)
def test_errors_in_the_child_are_raised_here(
    error: BaseException, raised: type[BaseException], says: str
) -> None:
    def work(report: ProgressReporter) -> tuple[dict[str, Any], bytes]:
        raise error

    with pytest.raises(raised, match=says) as caught:
        _run(work)
    if isinstance(caught.value, DatasetError):
        assert (caught.value.column, caught.value.row) == ("x", 3)


def test_a_child_past_its_deadline_is_killed() -> None:
    def work(report: ProgressReporter) -> tuple[dict[str, Any], bytes]:
        report(0, 1, "starting")
        # Signals do not reach code blocked in C; only the kill does.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(600)
        return {}, b""

    with pytest.raises(TrainingStopped, match=r"stopped 0\.5 s after it started"):
        _run(work, kill_after=0.5)


def test_an_allocation_past_the_cap_fails_the_run_and_not_this_process() -> None:
    held = data_bytes()
    assert held is not None

    def work(report: ProgressReporter) -> tuple[dict[str, Any], bytes]:
        block = np.ones(512 * 1024 * 1024 // 8)  # 512 MiB, past a 256 MiB cap
        return {"sum": float(block.sum())}, b""

    with pytest.raises(TrainingOutOfMemory, match="AIA_ML_TASK_MEMORY_MB = 256 MiB"):
        _run(work, memory_mb=256)
    # Within the cap the same work runs, and this process was never capped.
    summary, _, _ = _run(work, memory_mb=1024)
    assert summary["sum"] == 512 * 1024 * 1024 // 8
    assert np.ones(64 * 1024 * 1024 // 8).sum() > 0


def test_a_child_that_crashes_fails_the_run() -> None:
    def work(report: ProgressReporter) -> tuple[dict[str, Any], bytes]:
        faulthandler.disable()  # pytest's, which would print every thread's stack
        os.kill(os.getpid(), signal.SIGSEGV)
        return {}, b""

    with pytest.raises(TrainingDied, match="killed by SIGSEGV"):
        _run(work, memory_mb=512)


def test_openmp_after_the_fork_does_not_hang_the_child() -> None:
    # The parent's OpenMP threads do not survive a fork; a parallel region
    # wider than one thread would wait for them forever.
    x, y = make_classification(n_samples=2000, n_features=10, random_state=0)
    HistGradientBoostingClassifier(max_iter=5).fit(x, y)

    def work(report: ProgressReporter) -> tuple[dict[str, Any], bytes]:
        model = HistGradientBoostingClassifier(max_iter=5).fit(x, y)
        return {"score": float(model.score(x, y))}, b""

    summary, _, _ = _run(work, kill_after=60)
    assert summary["score"] > 0.8
