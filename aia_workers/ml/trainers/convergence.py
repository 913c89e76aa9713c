"""Solvers that stop at their iteration cap: noted in the run's details, not raised."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from sklearn.exceptions import ConvergenceWarning

__all__ = ["collect_convergence_warnings"]


@contextlib.contextmanager
def collect_convergence_warnings(sink: list[str]) -> Iterator[None]:
    """Collect ConvergenceWarnings into ``sink``; other warnings pass on unchanged.

    A solver stopped at its iteration cap still gives a usable (slightly
    off-optimum) model, and its held-out score says how good it is: no reason
    to fail the trial. The messages go into the run's details instead.
    """
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always", ConvergenceWarning)
        yield
    for record in records:
        if issubclass(record.category, ConvergenceWarning):
            sink.append(str(record.message))
        else:
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
