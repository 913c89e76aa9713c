"""Which test checks a feature, at which threshold: Evidently's defaults, or per feature."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aia_workers.drift.errors import DriftInputError
from aia_workers.drift.statistics import FeatureKind, StatTest

__all__ = [
    "DEFAULT_DRIFT_SHARE",
    "REFERENCE_SIZE_LIMIT",
    "DriftConfig",
    "FeatureConfig",
    "select_test",
]

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


def select_test(
    feature: str, kind: FeatureKind, reference_size: int, config: FeatureConfig | None = None
) -> tuple[StatTest, float]:
    """The test and threshold for one feature, given its kind and non-missing reference rows."""
    config = config or FeatureConfig()
    test = config.test or _default_test(kind, reference_size)
    if kind not in test.kinds:
        usable = ", ".join(t.value for t in StatTest if kind in t.kinds)
        raise DriftInputError(
            f"feature {feature!r} is {kind.value}, and {test.value} applies to "
            f"{' and '.join(sorted(k.value for k in test.kinds))} features only; "
            f"choose one of {usable}"
        )
    threshold = config.threshold if config.threshold is not None else test.default_threshold
    return test, threshold


def _default_test(kind: FeatureKind, reference_size: int) -> StatTest:
    if reference_size <= REFERENCE_SIZE_LIMIT:
        return StatTest.KS if kind is FeatureKind.NUMERIC else StatTest.CHISQUARE
    return StatTest.WASSERSTEIN if kind is FeatureKind.NUMERIC else StatTest.JENSENSHANNON
