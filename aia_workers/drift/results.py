"""A drift check's results, per feature and for the dataset, in a form that stores as JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aia_workers.drift.contracts.checks import FeatureKind, StatTest
from aia_workers.drift.errors import DriftInputError

__all__ = ["DatasetDrift", "FeatureDrift"]


def _json_float(value: float | None) -> float | None:
    # NaN and infinity are not JSON; a statistic that is not a number reads as null.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's check: the test, its outcome, its PSI and the samples it ran on.

    `statistic` is the test's statistic (KS's D, chi-squared), or the distance for
    wasserstein, jensenshannon and psi; `p_value` is None for the distances. `drifted`
    is ``p_value < threshold`` for the tests and ``statistic >= threshold`` for the
    distances. Counts are of the values tested; missing ones were dropped first.
    """

    feature: str
    kind: FeatureKind
    test: StatTest
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    psi: float
    reference_count: int
    current_count: int
    reference_missing: int
    current_missing: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe fields, for the stored report."""
        return {
            "feature": self.feature,
            "kind": self.kind.value,
            "test": self.test.value,
            "statistic": _json_float(self.statistic),
            "p_value": _json_float(self.p_value),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "psi": _json_float(self.psi),
            "reference_count": self.reference_count,
            "current_count": self.current_count,
            "reference_missing": self.reference_missing,
            "current_missing": self.current_missing,
        }


@dataclass(frozen=True, slots=True)
class DatasetDrift:
    """The dataset's verdict: drifted when at least `drift_share` of its features drifted."""

    features: tuple[FeatureDrift, ...]
    drift_share: float

    def __post_init__(self) -> None:
        if not self.features:
            raise DriftInputError("a drift check needs at least one feature; none were given")

    @property
    def drifted_count(self) -> int:
        return sum(feature.drifted for feature in self.features)

    @property
    def drifted_share(self) -> float:
        return self.drifted_count / len(self.features)

    @property
    def drifted(self) -> bool:
        return self.drifted_share >= self.drift_share

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe fields, the features in the order they were checked."""
        return {
            "drifted": self.drifted,
            "drift_share": self.drift_share,
            "drifted_share": self.drifted_share,
            "drifted_count": self.drifted_count,
            "feature_count": len(self.features),
            "features": [feature.as_dict() for feature in self.features],
        }
