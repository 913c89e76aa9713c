"""Convergence warnings become notes in the run's details; other warnings still surface."""

from __future__ import annotations

import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning

from aia_workers.ml.trainers.convergence import collect_convergence_warnings


def test_convergence_warnings_are_collected_and_others_pass_on() -> None:
    sink: list[str] = []
    with collect_convergence_warnings(sink):
        warnings.warn("lbfgs failed to converge", ConvergenceWarning, stacklevel=1)
    assert sink == ["lbfgs failed to converge"]
    with pytest.raises(UserWarning, match="something else"), collect_convergence_warnings(sink):
        warnings.warn("something else", UserWarning, stacklevel=1)
