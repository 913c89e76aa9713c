"""A drift check: clean each feature's two samples, run its test and PSI, and give the verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from aia_workers.drift.contracts.checks import DriftConfig, FeatureConfig, FeatureKind
from aia_workers.drift.errors import DriftInputError
from aia_workers.drift.results import DatasetDrift, FeatureDrift
from aia_workers.drift.selection import select_test
from aia_workers.drift.statistics import FloatArray, Sample, compute, psi

__all__ = ["Values", "check_dataset", "check_feature"]

# One feature's values: a numpy array, a pandas Series, or any sequence.
Values: TypeAlias = "np.ndarray[Any, Any] | pd.Series[Any] | Sequence[Any]"


def check_dataset(
    reference: Mapping[str, Values] | pd.DataFrame,
    current: Mapping[str, Values] | pd.DataFrame,
    kinds: Mapping[str, FeatureKind],
    config: DriftConfig | None = None,
) -> DatasetDrift:
    """Check every feature named in `kinds`, in that order, and the dataset as a whole.

    `reference` and `current` map feature names to values (a DataFrame does); columns
    not in `kinds` are ignored. Raises `DriftInputError` naming the feature when one
    is absent, all missing, or not numeric though declared so.
    """
    config = config or DriftConfig()
    unknown = sorted(set(config.features) - set(kinds))
    if unknown:
        raise DriftInputError(
            f"the configuration names features that are not checked: {', '.join(unknown)}; "
            f"the features are {', '.join(kinds) or 'none'}"
        )
    features = []
    for name, kind in kinds.items():
        for side, data in (("reference", reference), ("current", current)):
            if name not in data:
                raise DriftInputError(f"feature {name!r} is not in the {side} data")
        features.append(
            check_feature(name, kind, reference[name], current[name], config.features.get(name))
        )
    return DatasetDrift(features=tuple(features), drift_share=config.drift_share)


def check_feature(
    name: str,
    kind: FeatureKind,
    reference: Values,
    current: Values,
    config: FeatureConfig | None = None,
) -> FeatureDrift:
    """Check one feature: missing values dropped and counted, then its test and PSI."""
    ref, ref_missing = _clean(name, kind, "reference", reference)
    cur, cur_missing = _clean(name, kind, "current", current)
    test, threshold = select_test(name, kind, len(ref), config)
    statistic = compute(test, kind, ref, cur)
    if statistic.p_value is None:
        drifted = statistic.value >= threshold
    else:
        drifted = statistic.p_value < threshold
    return FeatureDrift(
        feature=name,
        kind=kind,
        test=test,
        statistic=statistic.value,
        p_value=statistic.p_value,
        threshold=threshold,
        drifted=bool(drifted),
        psi=psi(kind, ref, cur),
        reference_count=len(ref),
        current_count=len(cur),
        reference_missing=ref_missing,
        current_missing=cur_missing,
    )


def _clean(name: str, kind: FeatureKind, side: str, values: Values) -> tuple[Sample, int]:
    """The values that can be tested and how many were missing.

    Missing is None, NaN or NA, and for a numeric feature also an infinity, which no
    test or distance can place (Evidently drops infinities too).
    """
    sample: Sample
    if kind is FeatureKind.NUMERIC:
        sample = _as_floats(name, side, values)
        present = np.isfinite(sample)
    else:
        sample = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
        present = sample.notna().to_numpy()
    total = len(sample)
    kept = int(np.count_nonzero(present))
    if kept == 0:
        raise DriftInputError(
            f"feature {name!r} has no values in the {side} data"
            + (f" (all {total} missing)" if total else "")
        )
    if kept < total:
        sample = sample[present]
    return sample, total - kept


def _as_floats(name: str, side: str, values: Values) -> FloatArray:
    floats: FloatArray
    try:
        if isinstance(values, pd.Series):
            floats = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            floats = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DriftInputError(
            f"feature {name!r} is numeric, but its {side} data holds values that are not "
            f"numbers ({error}); declare it categorical or convert it"
        ) from error
    return floats
