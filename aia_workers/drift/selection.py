"""Which test checks a feature, at which threshold: Evidently's defaults or the feature's own."""

from __future__ import annotations

from aia_workers.drift.contracts.checks import (
    REFERENCE_SIZE_LIMIT,
    FeatureConfig,
    FeatureKind,
    StatTest,
)
from aia_workers.drift.errors import DriftInputError

__all__ = ["select_test"]


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
