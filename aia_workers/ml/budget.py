"""A run's time budget inside its fits: the deadline they look at, and a hard stop past it.

A search plans its trials to end within the budget, but a final fit cannot be
planned that way: one forest of many trees or one MLP of many epochs takes as
long as it takes. So fits that grow in steps (trees, boosting rounds, epochs)
look at ``past_deadline()`` between steps and stop with the model they have;
``hard_stop`` interrupts whatever Python code still runs a grace period later
with BudgetExceeded, which a trainer catches where it has a smaller model to
fall back on. Code that holds the interpreter in C for minutes (a libsvm solve)
cannot be interrupted at all: the worker stops the whole training process
instead (``aia_workers.ml.isolation``).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType

__all__ = [
    "BudgetExceeded",
    "deadline",
    "fit_deadline",
    "grace_seconds",
    "hard_stop",
    "past_deadline",
]

_deadline: ContextVar[float | None] = ContextVar("aia_fit_deadline", default=None)
# How far past its budget a run may go before it is interrupted, and then stopped.
_GRACE_SHARE = 0.1
_MIN_GRACE_SECONDS = 5.0
_MAX_GRACE_SECONDS = 60.0


class BudgetExceeded(BaseException):
    """Raised inside a fit when its run's time budget and grace period are spent.

    A BaseException, as KeyboardInterrupt is: it arrives asynchronously, and a
    library's ``except Exception`` around its own work must not swallow it.
    """


@contextmanager
def fit_deadline(at: float | None) -> Iterator[None]:
    """Fits in this block stop growing at ``at`` (``time.perf_counter()`` seconds)."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


def deadline() -> float | None:
    """The deadline of the fits in progress, if any."""
    return _deadline.get()


def past_deadline() -> bool:
    """True once the fits in progress should stop growing."""
    at = _deadline.get()
    return at is not None and time.perf_counter() >= at


def grace_seconds(budget_seconds: float) -> float:
    """How long past its budget a run may go before it is interrupted: 10 %, 5 s to 60 s."""
    return min(_MAX_GRACE_SECONDS, max(_MIN_GRACE_SECONDS, _GRACE_SHARE * budget_seconds))


@contextmanager
def hard_stop(after_seconds: float) -> Iterator[None]:
    """Raise BudgetExceeded in this thread once ``after_seconds`` have passed.

    Uses SIGALRM, so it works in the main thread only (elsewhere it does
    nothing); the previous handler and what was left of a previous timer
    are put back on leaving.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise BudgetExceeded(f"the time budget ran out {after_seconds:.1f} s into the fit")

    previous = signal.signal(signal.SIGALRM, interrupt)
    started = time.monotonic()
    earlier, _ = signal.setitimer(signal.ITIMER_REAL, max(after_seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if earlier > 0:
            left = earlier - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))
