"""Each statistic equals scipy's own on the same data, built as Evidently builds its inputs."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from aia_workers.drift.check import check_feature
from aia_workers.drift.contracts.checks import FeatureConfig, FeatureKind, StatTest
from aia_workers.drift.statistics import psi

TOLERANCE = 1e-9
CATEGORIES = np.array(["red", "green", "blue", "amber", "violet"])


def _numeric(seed: int, size: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, size)


def _categorical(seed: int, size: int, shares: list[float]) -> np.ndarray:
    return np.random.default_rng(seed).choice(CATEGORIES[: len(shares)], size, p=shares)


def _counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts per value over the union of both samples' values, computed independently."""
    ref, cur = Counter(reference.tolist()), Counter(current.tolist())
    values = sorted(set(ref) | set(cur))
    return np.array([ref[v] for v in values], float), np.array([cur[v] for v in values], float)


def _sturges_shares(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
    return (
        np.histogram(reference, edges)[0] / reference.size,
        np.histogram(current, edges)[0] / current.size,
    )


def _check(kind: FeatureKind, test: StatTest, reference: np.ndarray, current: np.ndarray):
    return check_feature("f", kind, reference, current, FeatureConfig(test=test))


@pytest.mark.parametrize(("ref_size", "cur_size"), [(300, 700), (1_000, 1_000), (5_000, 20_000)])
def test_ks_equals_scipy(ref_size: int, cur_size: int) -> None:
    reference, current = _numeric(1, ref_size), _numeric(2, cur_size, 0.1)
    expected = stats.ks_2samp(reference, current)

    result = _check(FeatureKind.NUMERIC, StatTest.KS, reference, current)

    assert result.statistic == pytest.approx(expected.statistic, abs=TOLERANCE)
    assert result.p_value == pytest.approx(expected.pvalue, abs=TOLERANCE)
    assert result.drifted == bool(expected.pvalue < 0.05)


def test_wasserstein_is_scipys_distance_over_the_reference_population_std() -> None:
    reference, current = _numeric(3, 2_000) * 4 + 10, _numeric(4, 30_000) * 4 + 11
    expected = stats.wasserstein_distance(reference, current) / np.std(reference)

    result = _check(FeatureKind.NUMERIC, StatTest.WASSERSTEIN, reference, current)

    assert result.statistic == pytest.approx(expected, abs=TOLERANCE)
    assert result.p_value is None
    assert result.drifted == bool(expected >= 0.1)


def test_wasserstein_of_a_constant_reference_divides_by_evidentlys_floor() -> None:
    reference, current = np.full(50, 3.0), np.array([3.0, 3.5, 4.0])

    result = _check(FeatureKind.NUMERIC, StatTest.WASSERSTEIN, reference, current)

    assert result.statistic == pytest.approx(
        stats.wasserstein_distance(reference, current) / 0.001, abs=TOLERANCE
    )


@pytest.mark.parametrize(
    ("ref_shares", "cur_shares"),
    [([0.4, 0.3, 0.2, 0.1], [0.35, 0.3, 0.25, 0.1]), ([0.5, 0.5], [0.45, 0.55])],
)
def test_chisquare_equals_scipys_test_of_homogeneity(ref_shares, cur_shares) -> None:
    reference, current = _categorical(5, 800, ref_shares), _categorical(6, 1_200, cur_shares)
    expected = stats.chi2_contingency(np.vstack(_counts(reference, current)), correction=False)

    result = _check(FeatureKind.CATEGORICAL, StatTest.CHISQUARE, reference, current)

    assert result.statistic == pytest.approx(expected.statistic, abs=TOLERANCE)
    assert result.p_value == pytest.approx(expected.pvalue, abs=TOLERANCE)


def test_chisquare_of_two_categories_is_evidentlys_two_proportion_z_test() -> None:
    reference, current = _categorical(7, 600, [0.3, 0.7]), _categorical(8, 900, [0.36, 0.64])
    ref_hits, cur_hits = (reference == "red").sum(), (current == "red").sum()
    pooled = (ref_hits + cur_hits) / (reference.size + current.size)
    z = (ref_hits / reference.size - cur_hits / current.size) / np.sqrt(
        pooled * (1 - pooled) * (1 / reference.size + 1 / current.size)
    )

    result = _check(FeatureKind.CATEGORICAL, StatTest.CHISQUARE, reference, current)

    assert result.statistic == pytest.approx(z**2, abs=TOLERANCE)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), abs=TOLERANCE)


def test_chisquare_counts_a_category_new_in_current_and_stays_finite() -> None:
    reference = np.array(["a"] * 40 + ["b"] * 60, dtype=object)
    current = np.array(["a"] * 30 + ["b"] * 60 + ["c"] * 10, dtype=object)
    expected = stats.chi2_contingency(np.vstack(_counts(reference, current)), correction=False)

    result = _check(FeatureKind.CATEGORICAL, StatTest.CHISQUARE, reference, current)

    assert result.statistic == pytest.approx(expected.statistic, abs=TOLERANCE)
    assert result.p_value == pytest.approx(expected.pvalue, abs=TOLERANCE)
    assert result.drifted


def test_jensenshannon_of_categories_uses_natural_log_over_the_union() -> None:
    reference = _categorical(9, 3_000, [0.4, 0.3, 0.2, 0.1])
    current = _categorical(10, 10_000, [0.3, 0.3, 0.2, 0.1, 0.1])
    ref_counts, cur_counts = _counts(reference, current)
    expected = distance.jensenshannon(ref_counts / reference.size, cur_counts / current.size)

    result = _check(FeatureKind.CATEGORICAL, StatTest.JENSENSHANNON, reference, current)

    assert result.statistic == pytest.approx(expected, abs=TOLERANCE)
    assert result.statistic < distance.jensenshannon(
        ref_counts / reference.size, cur_counts / current.size, base=2
    )


def test_jensenshannon_of_a_numeric_feature_uses_sturges_bins_over_both_samples() -> None:
    reference, current = _numeric(11, 2_500), _numeric(12, 40_000, 0.3)

    result = _check(FeatureKind.NUMERIC, StatTest.JENSENSHANNON, reference, current)

    assert result.statistic == pytest.approx(
        distance.jensenshannon(*_sturges_shares(reference, current)), abs=TOLERANCE
    )


def _evidently_psi(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    def fill(shares: np.ndarray) -> np.ndarray:
        smallest = shares[shares > 0].min()
        return np.where(shares == 0, smallest / 1e6 if smallest <= 1e-4 else 1e-4, shares)

    ref, cur = fill(ref_shares), fill(cur_shares)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def test_psi_of_a_numeric_feature_uses_sturges_bins_and_evidentlys_empty_share() -> None:
    reference, current = _numeric(13, 2_000), _numeric(14, 5_000, 1.5)
    ref_shares, cur_shares = _sturges_shares(reference, current)
    assert (ref_shares == 0).any()  # the shift leaves reference bins empty

    assert psi(FeatureKind.NUMERIC, reference, current) == pytest.approx(
        _evidently_psi(ref_shares, cur_shares), abs=TOLERANCE
    )


def test_psi_of_a_few_valued_numeric_feature_counts_values() -> None:
    reference = np.repeat([1.0, 2.0, 3.0], [50, 30, 20])
    current = np.repeat([1.0, 2.0, 4.0], [40, 30, 30])
    ref_counts, cur_counts = _counts(reference, current)

    assert psi(FeatureKind.NUMERIC, reference, current) == pytest.approx(
        _evidently_psi(ref_counts / 100, cur_counts / 100), abs=TOLERANCE
    )


def test_psi_fills_an_empty_bin_with_a_millionth_of_a_tiny_share() -> None:
    # 1 of 20,000 is a share of 0.00005, below 0.0001: the empty bin gets 0.00005 / 1e6.
    reference = np.array(["a"] * 19_999 + ["b"], dtype=object)
    current = np.array(["a"] * 100 + ["c"] * 100, dtype=object)
    ref_counts, cur_counts = _counts(reference, current)

    assert psi(FeatureKind.CATEGORICAL, reference, current) == pytest.approx(
        _evidently_psi(ref_counts / reference.size, cur_counts / current.size), abs=TOLERANCE
    )


def test_psi_is_reported_for_every_test_and_zero_for_identical_samples() -> None:
    sample = _numeric(15, 500)

    for test in (StatTest.KS, StatTest.WASSERSTEIN, StatTest.JENSENSHANNON, StatTest.PSI):
        result = _check(FeatureKind.NUMERIC, test, sample, sample.copy())
        assert result.psi == pytest.approx(0.0, abs=TOLERANCE)


def test_psi_chosen_as_the_test_drifts_at_its_threshold() -> None:
    reference, current = _numeric(16, 2_000), _numeric(17, 2_000, 0.5)

    result = _check(FeatureKind.NUMERIC, StatTest.PSI, reference, current)

    assert result.statistic == result.psi
    assert result.threshold == 0.1
    assert result.drifted is (result.psi >= 0.1)


def test_unused_categories_of_a_pandas_categorical_are_not_counted() -> None:
    dtype = pd.CategoricalDtype(["a", "b", "c", "unused"])
    reference = pd.Series(["a"] * 30 + ["b"] * 50 + ["c"] * 20, dtype=dtype)
    current = pd.Series(["a"] * 40 + ["b"] * 40 + ["c"] * 20, dtype=dtype)
    plain = (reference.astype(object), current.astype(object))

    for test in (StatTest.CHISQUARE, StatTest.JENSENSHANNON):
        result = _check(FeatureKind.CATEGORICAL, test, reference, current)
        expected = _check(FeatureKind.CATEGORICAL, test, *plain)
        assert result.statistic == pytest.approx(expected.statistic, abs=TOLERANCE)
        assert result.psi == pytest.approx(expected.psi, abs=TOLERANCE)
