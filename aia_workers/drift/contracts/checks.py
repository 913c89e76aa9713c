"""A drift check's vocabulary and configuration: feature kinds, tests, per-feature choices.

Light on purpose (pydantic and the standard library only), so the API can
validate a check's configuration without importing the statistics.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DEFAULT_DRIFT_SHARE",
    "REFERENCE_SIZE_LIMIT",
    "DriftConfig",
    "FeatureConfig",
    "FeatureKind",
    "PerformanceConfig",
    "StatTest",
]


class FeatureKind(StrEnum):
    """How a feature's values are compared: as a distribution of numbers, or by category shares.

    Profiles and checks share it; a table's ``ColumnKind`` maps onto it (dates and
    text lengths are numbers, booleans are categories).
    """

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class StatTest(StrEnum):
    """The tests a feature can be checked with (Evidently's names)."""

    KS = "ks"
    CHISQUARE = "chisquare"
    WASSERSTEIN = "wasserstein"
    JENSENSHANNON = "jensenshannon"
    PSI = "psi"

    @property
    def uses_p_value(self) -> bool:
        """True: drift is a p-value below the threshold; False: a distance at or above it."""
        return self in (StatTest.KS, StatTest.CHISQUARE)

    @property
    def default_threshold(self) -> float:
        """Evidently's default: p < 0.05 for the tests, a distance of 0.1 for the rest."""
        return 0.05 if self.uses_p_value else 0.1

    @property
    def kinds(self) -> frozenset[FeatureKind]:
        """The feature kinds this test applies to."""
        return _KINDS[self]


_KINDS = {
    StatTest.KS: frozenset({FeatureKind.NUMERIC}),
    StatTest.WASSERSTEIN: frozenset({FeatureKind.NUMERIC}),
    StatTest.CHISQUARE: frozenset({FeatureKind.CATEGORICAL}),
    StatTest.JENSENSHANNON: frozenset(FeatureKind),
    StatTest.PSI: frozenset(FeatureKind),
}


# Evidently's defaults: up to this many reference rows the p-value tests (KS, chi-squared);
# above it the distances (Wasserstein normed, Jensen-Shannon), since with large samples
# every p-value test finds "drift" in differences too small to matter.
REFERENCE_SIZE_LIMIT = 1_000
DEFAULT_DRIFT_SHARE = 0.5


class FeatureConfig(BaseModel):
    """One feature's choice of test and threshold; what is left out falls back to the default.

    A threshold alone applies to whichever test the defaults pick, as in Evidently:
    a p-value for KS and chi-squared, a distance for the others.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    test: StatTest | None = None
    threshold: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _p_value_threshold_below_one(self) -> FeatureConfig:
        if (
            self.test is not None
            and self.test.uses_p_value
            and self.threshold is not None
            and self.threshold >= 1
        ):
            raise ValueError(
                f"{self.test.value} drifts when its p-value is below the threshold, so the "
                f"threshold must be below 1 (0.05 is the usual one), not {self.threshold}"
            )
        return self


class DriftConfig(BaseModel):
    """A whole check's configuration: per-feature overrides and the dataset's drift share."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    features: dict[str, FeatureConfig] = Field(default_factory=dict)
    drift_share: float = Field(
        default=DEFAULT_DRIFT_SHARE,
        gt=0,
        le=1,
        description="The dataset drifts when at least this share of its features drift.",
    )


class PerformanceConfig(BaseModel):
    """When a version's metric on fed-back labels counts as having dropped from its training value.

    ``max_drop`` is in the metric's own units for the unitless scores (accuracy,
    f1, roc_auc, r2: 0.05 is five points) and a share of the training value for
    the errors in the target's units (mae, rmse, neg_mae: 0.05 is 5 % worse),
    for which no one absolute figure would suit every target.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_drop: float = Field(
        default=0.05,
        ge=0,
        description="Drifted when the live metric is worse than the training one by more.",
    )
    min_labels: int = Field(
        default=30,
        ge=2,
        description="Fewer labelled predictions in the window than this measure nothing.",
    )
