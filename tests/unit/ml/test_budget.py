"""The time budget inside a fit: staged growth that stops at the deadline, and the hard stop."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    IsolationForest,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from aia_workers.ml.budget import (
    BudgetExceeded,
    deadline,
    fit_deadline,
    grace_seconds,
    hard_stop,
    past_deadline,
)
from aia_workers.ml.trainers.neural import MLPClassifier
from aia_workers.ml.trainers.staged import staged_fit

X, Y = make_classification(n_samples=400, n_features=8, n_informative=4, random_state=0)
PAST = 0.0  # a perf_counter reading long gone: the deadline has passed
FAR = float("inf")


def _pipeline(model: object) -> Pipeline:
    return Pipeline([("scale", StandardScaler()), ("model", model)])


def test_a_forest_past_its_deadline_keeps_the_trees_it_grew() -> None:
    pipeline = _pipeline(RandomForestClassifier(n_estimators=1000, random_state=0, n_jobs=1))
    with fit_deadline(PAST):
        cut = staged_fit(pipeline, X, Y)
    # A first stage of a tenth of a tenth: a deadline already gone still leaves a forest.
    assert cut == {"parameter": "n_estimators", "reached": 10, "asked": 1000}
    forest = pipeline.named_steps["model"]
    assert len(forest.estimators_) == 10
    assert forest.get_params()["warm_start"] is False
    assert pipeline.score(X, Y) > 0.8


def test_a_forest_with_time_left_is_the_forest_one_fit_builds() -> None:
    staged = _pipeline(RandomForestClassifier(n_estimators=30, random_state=3, n_jobs=1))
    with fit_deadline(FAR):
        assert staged_fit(staged, X, Y) is None
    whole = _pipeline(RandomForestClassifier(n_estimators=30, random_state=3, n_jobs=1))
    whole.fit(X, Y)
    assert staged.named_steps["model"].n_estimators == 30
    np.testing.assert_array_equal(staged.predict_proba(X), whole.predict_proba(X))


def test_boosting_and_isolation_forests_grow_in_stages_too() -> None:
    boosting = _pipeline(HistGradientBoostingClassifier(max_iter=300, random_state=0))
    with fit_deadline(PAST):
        cut = staged_fit(boosting, X, Y)
    assert cut == {"parameter": "max_iter", "reached": 3, "asked": 300}
    assert boosting.named_steps["model"].n_iter_ == 3
    isolation = _pipeline(IsolationForest(n_estimators=200, random_state=0, n_jobs=1))
    with fit_deadline(PAST):
        cut = staged_fit(isolation, X)
    assert cut == {"parameter": "n_estimators", "reached": 2, "asked": 200}
    assert len(isolation.predict(X)) == len(X)


def test_without_a_deadline_or_a_growable_model_it_is_one_fit() -> None:
    assert deadline() is None
    assert not past_deadline()
    forest = _pipeline(RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1))
    assert staged_fit(forest, X, Y) is None
    with fit_deadline(PAST):
        assert past_deadline()
        linear = _pipeline(LogisticRegression())
        assert staged_fit(linear, X, Y) is None
    assert deadline() is None


def test_an_mlp_past_its_deadline_stops_after_one_epoch() -> None:
    pipeline = _pipeline(MLPClassifier(max_epochs=500, patience=500, random_state=0))
    with fit_deadline(PAST):
        cut = staged_fit(pipeline, X, Y)
    network = pipeline.named_steps["model"]
    assert network.n_epochs_ == 1
    assert network.stopped_at_deadline_
    assert cut == {"parameter": "max_epochs", "reached": 1, "asked": 500}
    assert pipeline.predict_proba(X).shape == (len(X), 2)
    unhurried = MLPClassifier(max_epochs=3, random_state=0).fit(X, Y)
    assert not unhurried.stopped_at_deadline_
    assert unhurried.n_epochs_ == 3


def test_hard_stop_interrupts_python_code_and_restores_the_previous_timer() -> None:
    earlier = signal.getsignal(signal.SIGALRM)
    before = signal.getitimer(signal.ITIMER_REAL)[0]
    with pytest.raises(BudgetExceeded), hard_stop(0.05):
        _wait_forever()
    assert signal.getsignal(signal.SIGALRM) is earlier
    # pytest-timeout's own alarm (when it runs) is put back, not cancelled.
    assert (signal.getitimer(signal.ITIMER_REAL)[0] > 0) == (before > 0)
    with hard_stop(60):
        pass
    assert signal.getsignal(signal.SIGALRM) is earlier


def test_budget_exceeded_gets_past_except_exception() -> None:
    # Library code wraps its work in ``except Exception``; an interrupt must not end there.
    with pytest.raises(BudgetExceeded), hard_stop(0.05):
        _wait_forever_in_a_library()


def _wait_forever() -> None:
    while True:
        time.sleep(0.01)


def _wait_forever_in_a_library() -> None:
    try:
        _wait_forever()
    except Exception:
        pytest.fail("BudgetExceeded was caught as an Exception")


def test_grace_is_a_tenth_of_the_budget_within_bounds() -> None:
    assert grace_seconds(1) == 5
    assert grace_seconds(300) == 30
    assert grace_seconds(3600) == 60
