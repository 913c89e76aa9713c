"""The drift statistics of one feature, from scipy, defined as Evidently defines them.

Every function here takes the reference and current samples of one feature with
missing values already dropped (see `check.py`) and returns a `Statistic`.
Where Evidently's definitions are followed, and where not:

- ``ks``: ``scipy.stats.ks_2samp(reference, current)`` with scipy's defaults
  (two-sided, exact p-value up to 10,000 rows a side), as Evidently.
- ``wasserstein``: ``scipy.stats.wasserstein_distance`` divided by the reference's
  population standard deviation (``np.std``, ddof 0), floored at 0.001 so a
  constant reference does not divide by zero, as Evidently.
- ``jensenshannon``: ``scipy.spatial.distance.jensenshannon`` of the two share
  vectors, natural log (scipy's default base, as Evidently passes ``base=None``),
  with no smoothing of empty bins, as Evidently. The share vectors are built as
  Evidently's ``get_binned_data`` builds them: a numeric feature with more than 20
  distinct reference values is cut into equal-width bins, Sturges' rule over the
  reference and current values together (``np.histogram_bin_edges(..., "sturges")``,
  not reference quantiles); any other feature is counted per value over the union
  of the values seen in either sample.
- ``psi``: sum of ``(ref - cur) * ln(ref / cur)`` over the same bins as
  ``jensenshannon``, an empty bin's share replaced as Evidently replaces it:
  by 0.0001, or by a millionth of the smallest non-empty share when that share is
  itself at most 0.0001 (each sample on its own).
- ``chisquare``: here AIA departs from Evidently. Evidently runs
  ``scipy.stats.chisquare`` with the current counts observed and the reference
  frequencies, scaled to the current size, as the expected counts over the union
  of categories: a goodness-of-fit test that takes the reference's frequencies as
  exact. With a reference of the same size as the current window (the case its
  defaults pick this test for, at most 1,000 reference rows) that ignores half the
  sampling noise, and with no drift at all it alarms in about 29 % of checks of a
  four-category feature at 1,000 rows a side instead of 5 %. AIA builds the same
  2 x k table of counts over the union of categories and runs scipy's two-sample
  test of homogeneity on it, ``scipy.stats.chi2_contingency(..., correction=False)``.
  For two categories that is exactly Evidently's default for binary features, the
  pooled two-proportion z-test (chi-squared = z squared); with a reference much
  larger than the current window it tends to Evidently's chisquare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from aia_workers.drift.contracts.checks import FeatureKind, StatTest

__all__ = [
    "FloatArray",
    "Sample",
    "Statistic",
    "binned_shares",
    "compute",
    "psi",
]

# A numeric feature with at most this many distinct reference values is counted per
# value rather than binned (Evidently's get_binned_data).
_MAX_VALUES_COUNTED = 20
_PSI_EMPTY_SHARE = 0.0001
_PSI_TINY_SHARE_DIVISOR = 1e6
_WASSERSTEIN_MIN_NORM = 0.001

FloatArray: TypeAlias = npt.NDArray[np.float64]
# A numeric sample is a float array; a categorical one a Series of hashable values.
Sample: TypeAlias = "FloatArray | pd.Series[Any]"


@dataclass(frozen=True, slots=True)
class Statistic:
    """A test's statistic (for the distances, the distance) and its p-value if it has one."""

    value: float
    p_value: float | None = None


def compute(test: StatTest, kind: FeatureKind, reference: Sample, current: Sample) -> Statistic:
    """Run `test` on two non-empty samples of a feature of `kind`, without missing values."""
    return _COMPUTE[test](kind, reference, current)


def _ks(kind: FeatureKind, reference: Sample, current: Sample) -> Statistic:
    result = stats.ks_2samp(reference, current)
    return Statistic(float(result.statistic), float(result.pvalue))


def _wasserstein(kind: FeatureKind, reference: Sample, current: Sample) -> Statistic:
    norm = max(float(np.std(reference)), _WASSERSTEIN_MIN_NORM)
    return Statistic(float(stats.wasserstein_distance(reference, current)) / norm)


def _chisquare(kind: FeatureKind, reference: Sample, current: Sample) -> Statistic:
    ref_counts, cur_counts = _value_counts(reference, current)
    result = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False)
    return Statistic(float(result.statistic), float(result.pvalue))


def _jensenshannon(kind: FeatureKind, reference: Sample, current: Sample) -> Statistic:
    ref_shares, cur_shares = binned_shares(kind, reference, current)
    return Statistic(float(distance.jensenshannon(ref_shares, cur_shares)))


def _psi(kind: FeatureKind, reference: Sample, current: Sample) -> Statistic:
    return Statistic(psi(kind, reference, current))


_COMPUTE: dict[StatTest, Callable[[FeatureKind, Sample, Sample], Statistic]] = {
    StatTest.KS: _ks,
    StatTest.WASSERSTEIN: _wasserstein,
    StatTest.CHISQUARE: _chisquare,
    StatTest.JENSENSHANNON: _jensenshannon,
    StatTest.PSI: _psi,
}


def psi(kind: FeatureKind, reference: Sample, current: Sample) -> float:
    """The population stability index of two non-empty samples, binned as Evidently bins."""
    ref_shares, cur_shares = (_fill_empty(s) for s in binned_shares(kind, reference, current))
    return float(np.sum((ref_shares - cur_shares) * np.log(ref_shares / cur_shares)))


def binned_shares(
    kind: FeatureKind, reference: Sample, current: Sample
) -> tuple[FloatArray, FloatArray]:
    """Each sample's share per bin: Sturges bins for a many-valued numeric feature, or per value."""
    if kind is FeatureKind.NUMERIC and pd.unique(reference).size > _MAX_VALUES_COUNTED:
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        ref_counts = np.histogram(reference, edges)[0]
        cur_counts = np.histogram(current, edges)[0]
    else:
        ref_counts, cur_counts = _value_counts(reference, current)
    return ref_counts / len(reference), cur_counts / len(current)


def _value_counts(reference: Sample, current: Sample) -> tuple[FloatArray, FloatArray]:
    """Counts per value over the union of the values in either sample, in one order."""
    ref_counts = pd.Series(reference).value_counts(sort=False)
    cur_counts = pd.Series(current).value_counts(sort=False)
    # sort=False: categories of mixed types cannot be ordered, and the order does not matter.
    values = ref_counts.index.union(cur_counts.index, sort=False)
    ref = ref_counts.reindex(values, fill_value=0).to_numpy(dtype=np.float64)
    cur = cur_counts.reindex(values, fill_value=0).to_numpy(dtype=np.float64)
    # A pandas Categorical counts its unused categories too; only values seen count.
    seen = (ref + cur) > 0
    return ref[seen], cur[seen]


def _fill_empty(shares: FloatArray) -> FloatArray:
    """Evidently's share for an empty bin, so the logarithm stays finite."""
    empty = shares == 0
    if not empty.any():
        return shares
    smallest = float(shares[~empty].min())
    fill = smallest / _PSI_TINY_SHARE_DIVISOR if smallest <= _PSI_EMPTY_SHARE else _PSI_EMPTY_SHARE
    return np.where(empty, fill, shares)
