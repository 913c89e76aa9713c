"""The checks' behaviour by simulation, with fixed seeds: false alarms without drift, and power.

A test at a 5 % level alarms in 5 % of undrifted checks by construction, so an
estimate from a few hundred repetitions lands above 5 % about half the time.
The false-alarm tests therefore assert that the alarm count is no evidence of a
rate above 5 % (one-sided binomial test, p >= 0.01): with 400 repetitions that
fails a true rate of 9 % or more almost surely, as Evidently's goodness-of-fit
chi-squared (about 29 % here) would. Without drift the distances, at 10,000
rows, stay far below their 0.1 and never alarm.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from aia_workers.drift.check import check_feature
from aia_workers.drift.contracts.checks import FeatureConfig, FeatureKind, StatTest

CATEGORIES = np.array(["a", "b", "c", "d"])
SHARES = np.array([0.4, 0.3, 0.2, 0.1])
# Category "a" ten points up, the others down in proportion.
SHIFTED_SHARES = np.array([0.5, *(SHARES[1:] * 0.5 / 0.6)])
MAX_FALSE_ALARMS = 0.05
MIN_DETECTION = 0.95


def _samples(kind: FeatureKind, rng: np.random.Generator, size: int, drift: bool) -> np.ndarray:
    if kind is FeatureKind.NUMERIC:
        return rng.normal(0.5 if drift else 0.0, 1.0, size)
    return rng.choice(CATEGORIES, size, p=SHIFTED_SHARES if drift else SHARES)


def _alarms(
    kind: FeatureKind,
    size: int,
    repetitions: int,
    *,
    drift: bool,
    seed: int,
    test: StatTest | None = None,
    expected_test: StatTest,
) -> int:
    rng = np.random.default_rng(seed)
    config = FeatureConfig(test=test)
    alarms = 0
    for _ in range(repetitions):
        reference = _samples(kind, rng, size, drift=False)
        current = _samples(kind, rng, size, drift=drift)
        result = check_feature("f", kind, reference, current, config)
        assert result.test is expected_test
        alarms += result.drifted
    return alarms


def _assert_no_more_than_five_percent(alarms: int, repetitions: int) -> None:
    evidence = stats.binomtest(alarms, repetitions, MAX_FALSE_ALARMS, alternative="greater")
    assert evidence.pvalue >= 0.01, f"{alarms} false alarms in {repetitions} undrifted checks"


@pytest.mark.parametrize(
    ("kind", "size", "test", "expected_test", "repetitions"),
    [
        (FeatureKind.NUMERIC, 1_000, None, StatTest.KS, 400),
        (FeatureKind.CATEGORICAL, 1_000, None, StatTest.CHISQUARE, 400),
        (FeatureKind.NUMERIC, 10_000, StatTest.KS, StatTest.KS, 200),
        (FeatureKind.CATEGORICAL, 10_000, StatTest.CHISQUARE, StatTest.CHISQUARE, 200),
    ],
)
def test_p_value_tests_alarm_in_at_most_five_percent_without_drift(
    kind, size, test, expected_test, repetitions
) -> None:
    alarms = _alarms(
        kind, size, repetitions, drift=False, seed=size, test=test, expected_test=expected_test
    )

    _assert_no_more_than_five_percent(alarms, repetitions)


@pytest.mark.parametrize(
    ("kind", "expected_test"),
    [
        (FeatureKind.NUMERIC, StatTest.WASSERSTEIN),
        (FeatureKind.CATEGORICAL, StatTest.JENSENSHANNON),
    ],
)
def test_distances_at_ten_thousand_rows_do_not_alarm_without_drift(kind, expected_test) -> None:
    alarms = _alarms(kind, 10_000, 200, drift=False, seed=7, expected_test=expected_test)

    assert alarms / 200 <= MAX_FALSE_ALARMS


@pytest.mark.parametrize(
    ("kind", "expected_test"),
    [(FeatureKind.NUMERIC, StatTest.KS), (FeatureKind.CATEGORICAL, StatTest.CHISQUARE)],
)
def test_defaults_detect_drift_at_a_thousand_rows(kind, expected_test) -> None:
    """A 0.5 sigma mean shift, or one category's share ten points up, caught 95 % of the time.

    The category is the hardest of the four to move, from 0.4 to 0.5 (the others down
    in proportion): chi-squared's power there is about 97.6 % (noncentrality 20.2 on 3
    degrees of freedom); KS's power against the shift is all but 100 %.
    """
    detected = _alarms(kind, 1_000, 200, drift=True, seed=11, expected_test=expected_test)

    assert detected / 200 >= MIN_DETECTION
