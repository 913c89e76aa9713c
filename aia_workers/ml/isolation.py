"""Training in a forked child process: the worker process stops it at the deadline.

Python cannot interrupt code that holds the interpreter in C (a libsvm solve
runs for as long as it runs), and a library that meets a refused allocation
may crash its process rather than raise. So the worker's pool process forks
before each training and stays the parent: the child inherits the data and
every imported library without copying them, caps its own memory, trains, and
sends back its progress and the stored form of the model through a pipe. The
parent relays the progress, and kills the child if it is still running at the
deadline. A child that dies, of a signal or of memory, takes nothing with it:
the pool process goes on to its next task, and no worker loss (no poison
count) is recorded.

Nothing the parent holds is used in the child: no database or Redis
connection, no Celery state. The child leaves with ``os._exit``, so no
finalizer or atexit hook of the parent's runs there either.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import signal
import struct
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from threadpoolctl import threadpool_limits

from aia_workers.backbone.progress import ProgressReporter
from aia_workers.errors import TaskFailure
from aia_workers.ml.budget import BudgetExceeded
from aia_workers.ml.contracts.tables import DatasetError
from aia_workers.ml.memory import cap_memory, is_out_of_memory

__all__ = ["TrainingDied", "TrainingOutOfMemory", "TrainingStopped", "Work", "run_in_child"]

log = logging.getLogger(__name__)

# The work: given a progress reporter, a JSON-safe summary and the model's bytes.
Work = Callable[[ProgressReporter], tuple[dict[str, Any], bytes]]

# Frames on the pipe: a kind byte and a payload length, then the payload.
_HEADER = struct.Struct("!cQ")
_PROGRESS, _SUMMARY, _MODEL, _ERROR = b"p", b"s", b"m", b"e"
_READ_BYTES = 1 << 20
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Signals the pool process handles its own way; the child takes the defaults.
_RESET = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGALRM)


class TrainingStopped(TaskFailure):
    """Raised when a training ran past its time budget with nothing usable to show."""


class TrainingOutOfMemory(TaskFailure):
    """Raised when a training needed more memory than AIA_ML_TASK_MEMORY_MB allows."""


class TrainingDied(TaskFailure):
    """Raised when the training process died before it reported (a signal, a crash)."""


def run_in_child(
    work: Work,
    *,
    budget_seconds: float,
    kill_after_seconds: float,
    memory_mb: int,
    report: ProgressReporter,
) -> tuple[dict[str, Any], bytes]:
    """Run ``work`` in a forked child; its summary and model bytes, or its error raised here.

    The child may allocate ``memory_mb`` MiB beyond what it inherits (0: no
    cap) and is killed ``kill_after_seconds`` after the fork. Its errors come
    back as DatasetError, ValueError, TrainingStopped (its BudgetExceeded),
    TrainingOutOfMemory, or TaskFailure naming any other exception.
    """
    parent = os.getpid()
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12 warns on a fork from a process with threads; ours are the
        # BLAS and OpenMP pools, which the child leaves alone (one thread, see _child).
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(work, write_fd, parent, memory_mb)
    os.close(write_fd)
    started = time.monotonic()
    try:
        outcome = _collect(pid, read_fd, started + kill_after_seconds, report)
    finally:
        os.close(read_fd)
        _stop(pid)
    if outcome.error is not None:
        raise _rebuilt(outcome.error, budget_seconds, memory_mb)
    if outcome.killed:
        raise TrainingStopped(
            f"the run was stopped {kill_after_seconds:g} s after it started, past its time budget "
            f"of {budget_seconds:g} s: a fit was still running in code that cannot be "
            "interrupted (an SVM solve, most likely). Raise time_budget_seconds, use fewer "
            "rows, or choose another estimator"
        )
    if outcome.summary is None or outcome.model is None:
        raise TrainingDied(_death(outcome.status, memory_mb))
    return outcome.summary, outcome.model


@dataclass(slots=True)
class _Outcome:
    """What the child sent, and how it ended."""

    summary: dict[str, Any] | None = None
    model: bytes | None = None
    error: dict[str, Any] | None = None
    killed: bool = False  # still running at the deadline
    status: int = 0  # as os.waitpid reports it


def _collect(pid: int, fd: int, kill_at: float, report: ProgressReporter) -> _Outcome:
    """Read the child's frames until it closes the pipe or ``kill_at`` (monotonic) passes."""
    outcome = _Outcome()
    frames = _Frames()
    while True:
        left = kill_at - time.monotonic()
        if left <= 0:
            outcome.killed = True
            return outcome
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, _READ_BYTES)
        if not chunk:
            break
        for kind, payload in frames.feed(chunk):
            if kind == _PROGRESS:
                report(*json.loads(payload))
            elif kind == _SUMMARY:
                outcome.summary = json.loads(payload)
            elif kind == _MODEL:
                outcome.model = payload
            elif kind == _ERROR:
                outcome.error = json.loads(payload)
    # The pipe closes as the child exits; wait for its status, but not past the deadline.
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() >= kill_at:
            outcome.killed = outcome.summary is None and outcome.error is None
            return outcome
        time.sleep(0.01)
    outcome.status = done[1]
    return outcome


def _stop(pid: int) -> None:
    """Kill the child if it still runs, and reap it."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


class _Frames:
    """Reassembles frames from the chunks a pipe delivers."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> Iterator[tuple[bytes, bytes]]:
        self._buffer += chunk
        while len(self._buffer) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + size
            if len(self._buffer) < end:
                return
            with memoryview(self._buffer) as view:
                payload = bytes(view[_HEADER.size : end])
            del self._buffer[:end]
            yield kind, payload


def _rebuilt(error: dict[str, Any], budget_seconds: float, memory_mb: int) -> BaseException:
    message = str(error.get("message") or "")
    kind = error.get("kind")
    if kind == "dataset":
        return DatasetError(message, column=error.get("column"), row=error.get("row"))
    if kind == "value":
        return ValueError(message)
    if kind == "budget":
        return TrainingStopped(
            f"the run went past its time budget of {budget_seconds:g} s and had no smaller "
            "model to fall back on; raise time_budget_seconds or ask for a smaller model"
        )
    if kind == "memory":
        return TrainingOutOfMemory(
            f"the run needed more memory than an ml task may use (AIA_ML_TASK_MEMORY_MB = "
            f"{memory_mb} MiB): {message or 'an allocation was refused'}. Use fewer rows or "
            "columns (a categorical column with many values grows wide), or a smaller model"
        )
    log.error("training failed in its child process:\n%s", error.get("traceback", ""))
    return TaskFailure(f"{error.get('type', 'Error')}: {message}")


def _death(status: int, memory_mb: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name
        message = f"the training process was killed by {name} before it finished"
        if number == signal.SIGKILL:
            return message + " (the kernel's OOM killer, most likely: the host ran short of memory)"
        if memory_mb > 0:
            return (
                f"{message}; a library that cannot report a refused allocation crashes this "
                f"way, so the run may need more than AIA_ML_TASK_MEMORY_MB ({memory_mb} MiB)"
            )
        return message
    return f"the training process exited with code {os.WEXITSTATUS(status)} before it finished"


# -- in the child --------------------------------------------------------------------


def _child(work: Work, fd: int, parent: int, memory_mb: int) -> NoReturn:
    code = 1
    try:
        _die_with(parent)
        for number in _RESET:
            signal.signal(number, signal.SIG_DFL)
        cap_memory(memory_mb)

        def report(current: int, total: int, message: str | None = None) -> None:
            _send(fd, _PROGRESS, json.dumps([current, total, message]).encode())

        # The parent's OpenMP thread pools do not survive the fork: a parallel
        # region wider than one thread hangs the child for good (measured with
        # scikit-learn's gradient boosting). One thread per fit, as everywhere.
        with threadpool_limits(limits=1):
            summary, model = work(report)
        _send(fd, _SUMMARY, json.dumps(summary).encode())
        _send(fd, _MODEL, model)
        code = 0
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            _send(fd, _ERROR, json.dumps(_described(exc)).encode())
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when the pool process that forked it dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    # The parent may have died between the fork and prctl: no signal would come.
    if os.getppid() != parent:
        os._exit(1)


def _send(fd: int, kind: bytes, payload: bytes) -> None:
    # Header and payload go separately: joining them would copy the model once more.
    for part in (_HEADER.pack(kind, len(payload)), payload):
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view) :]


def _described(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, DatasetError):
        return {"kind": "dataset", "message": str(exc), "column": exc.column, "row": exc.row}
    if isinstance(exc, BudgetExceeded):
        return {"kind": "budget", "message": str(exc)}
    if is_out_of_memory(exc):
        return {"kind": "memory", "message": str(exc)}
    if isinstance(exc, ValueError):
        return {"kind": "value", "message": str(exc)}
    return {
        "kind": "error",
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
