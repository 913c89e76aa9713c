"""Test selection, per-feature overrides, the dataset share rule, missing values, the report."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from aia_workers.drift.check import check_dataset, check_feature
from aia_workers.drift.contracts.checks import DriftConfig, FeatureConfig, FeatureKind, StatTest
from aia_workers.drift.errors import DriftInputError
from aia_workers.drift.results import DatasetDrift
from aia_workers.errors import TaskFailure

NUMERIC, CATEGORICAL = FeatureKind.NUMERIC, FeatureKind.CATEGORICAL


def _normal(seed: int, size: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, size)


def _letters(seed: int, size: int, shares: tuple[float, ...] = (0.5, 0.3, 0.2)) -> np.ndarray:
    return np.random.default_rng(seed).choice(np.array(["a", "b", "c"]), size, p=shares)


@pytest.mark.parametrize(
    ("kind", "size", "test", "threshold"),
    [
        (NUMERIC, 1_000, StatTest.KS, 0.05),
        (NUMERIC, 1_001, StatTest.WASSERSTEIN, 0.1),
        (CATEGORICAL, 1_000, StatTest.CHISQUARE, 0.05),
        (CATEGORICAL, 1_001, StatTest.JENSENSHANNON, 0.1),
    ],
)
def test_default_test_follows_the_reference_size(kind, size, test, threshold) -> None:
    reference = _normal(1, size) if kind is NUMERIC else _letters(1, size)

    result = check_feature("f", kind, reference, reference[:500])

    assert (result.test, result.threshold) == (test, threshold)


def test_reference_size_counts_only_values_present() -> None:
    reference = np.append(_normal(2, 1_000), [np.nan] * 5)

    result = check_feature("f", NUMERIC, reference, _normal(3, 200))

    assert result.test is StatTest.KS
    assert (result.reference_count, result.reference_missing) == (1_000, 5)


def test_a_feature_override_sets_test_and_threshold() -> None:
    reference, current = _normal(4, 500), _normal(5, 500, 0.15)

    default = check_feature("f", NUMERIC, reference, current)
    chosen = check_feature(
        "f", NUMERIC, reference, current, FeatureConfig(test=StatTest.WASSERSTEIN, threshold=0.5)
    )

    assert default.test is StatTest.KS
    assert (chosen.test, chosen.threshold, chosen.p_value) == (StatTest.WASSERSTEIN, 0.5, None)
    assert chosen.drifted == (chosen.statistic >= 0.5)


def test_a_threshold_alone_applies_to_the_default_test() -> None:
    reference, current = _normal(6, 800), _normal(7, 800, 0.12)
    loose = check_feature("f", NUMERIC, reference, current)
    assert loose.p_value is not None
    strict = check_feature(
        "f", NUMERIC, reference, current, FeatureConfig(threshold=loose.p_value / 2)
    )

    assert strict.test is StatTest.KS
    assert strict.p_value == loose.p_value
    assert not strict.drifted


@pytest.mark.parametrize(
    ("kind", "test"),
    [
        (CATEGORICAL, StatTest.KS),
        (CATEGORICAL, StatTest.WASSERSTEIN),
        (NUMERIC, StatTest.CHISQUARE),
    ],
)
def test_a_test_for_the_other_kind_is_refused_with_the_choices(kind, test) -> None:
    values = _normal(8, 100) if kind is NUMERIC else _letters(8, 100)

    with pytest.raises(
        DriftInputError, match=r"applies to .* features only; choose one of"
    ) as info:
        check_feature("age", kind, values, values, FeatureConfig(test=test))

    assert "'age'" in str(info.value)
    assert isinstance(info.value, TaskFailure)


def test_a_p_value_threshold_of_one_or_more_is_invalid() -> None:
    with pytest.raises(ValidationError, match="must be below 1"):
        FeatureConfig(test=StatTest.KS, threshold=1.0)
    with pytest.raises(ValidationError):
        FeatureConfig(threshold=0)
    assert FeatureConfig(test=StatTest.PSI, threshold=2.0).threshold == 2.0


def test_config_reads_from_json() -> None:
    config = DriftConfig.model_validate(
        {"drift_share": 0.3, "features": {"x": {"test": "psi", "threshold": 0.2}}}
    )

    assert config.features["x"] == FeatureConfig(test=StatTest.PSI, threshold=0.2)
    with pytest.raises(ValidationError):
        DriftConfig.model_validate({"features": {"x": {"test": "t-test"}}})


def _dataset(drifted: int, steady: int) -> tuple[dict, dict, dict]:
    reference, current, kinds = {}, {}, {}
    for i in range(drifted + steady):
        name = f"f{i}"
        reference[name] = _normal(10 + i, 600)
        current[name] = reference[name] + 3.0 if i < drifted else reference[name].copy()
        kinds[name] = NUMERIC
    return reference, current, kinds


@pytest.mark.parametrize(
    ("drifted", "steady", "share", "verdict"),
    [
        (2, 2, 0.5, True),
        (1, 3, 0.5, False),
        (1, 3, 0.25, True),
        (3, 3, 0.6, False),
        (0, 4, 0.5, False),
    ],
)
def test_dataset_drifts_when_the_drifted_share_reaches_the_threshold(
    drifted, steady, share, verdict
) -> None:
    reference, current, kinds = _dataset(drifted, steady)

    result = check_dataset(reference, current, kinds, DriftConfig(drift_share=share))

    assert result.drifted_count == drifted
    assert result.drifted_share == drifted / (drifted + steady)
    assert result.drifted is verdict


def test_dataset_applies_each_features_override_and_keeps_kinds_order() -> None:
    reference = pd.DataFrame({"num": _normal(20, 400), "cat": _letters(20, 400), "other": 1.0})
    current = pd.DataFrame({"num": _normal(21, 300), "cat": _letters(21, 300)})
    config = DriftConfig(features={"cat": FeatureConfig(test=StatTest.PSI, threshold=0.3)})

    result = check_dataset(reference, current, {"cat": CATEGORICAL, "num": NUMERIC}, config)

    assert [(f.feature, f.test, f.threshold) for f in result.features] == [
        ("cat", StatTest.PSI, 0.3),
        ("num", StatTest.KS, 0.05),
    ]


def test_dataset_refuses_a_missing_column_or_an_override_for_no_feature() -> None:
    reference = {"a": _normal(22, 50), "b": _normal(23, 50)}
    current = {"a": _normal(24, 50)}

    with pytest.raises(DriftInputError, match="'b' is not in the current data"):
        check_dataset(reference, current, {"a": NUMERIC, "b": NUMERIC})
    with pytest.raises(DriftInputError, match="not checked: c"):
        check_dataset(
            reference, current, {"a": NUMERIC}, DriftConfig(features={"c": FeatureConfig()})
        )
    with pytest.raises(DriftInputError, match="at least one feature"):
        check_dataset(reference, current, {})


def test_numeric_missing_values_are_dropped_and_counted() -> None:
    clean_ref, clean_cur = _normal(25, 300), _normal(26, 400, 0.2)
    reference = pd.Series([*clean_ref, None, np.nan, np.inf], dtype="Float64")
    current = np.array([np.nan, *clean_cur, -np.inf, np.nan])

    result = check_feature("f", NUMERIC, reference, current)
    expected = check_feature("f", NUMERIC, clean_ref, clean_cur)

    assert (result.reference_count, result.reference_missing) == (300, 3)
    assert (result.current_count, result.current_missing) == (400, 3)
    assert (result.statistic, result.p_value, result.psi) == (
        expected.statistic,
        expected.p_value,
        expected.psi,
    )


def test_categorical_missing_values_are_dropped_and_counted() -> None:
    reference = pd.Series(["a", None, "b", "a", np.nan, "b", pd.NA], dtype=object)
    current = ["a", "b", "b", None, "c"]

    result = check_feature("f", CATEGORICAL, reference, current)
    expected = check_feature("f", CATEGORICAL, ["a", "b", "a", "b"], ["a", "b", "b", "c"])

    assert (result.reference_count, result.reference_missing) == (4, 3)
    assert (result.current_count, result.current_missing) == (4, 1)
    assert result.statistic == expected.statistic
    assert result.p_value == expected.p_value


def test_a_feature_with_no_values_or_with_text_is_refused_by_name() -> None:
    with pytest.raises(DriftInputError, match=r"'f' has no values in the current data \(all 3"):
        check_feature("f", NUMERIC, [1.0, 2.0], [np.nan, None, np.nan])
    with pytest.raises(DriftInputError, match="'f' has no values in the reference data"):
        check_feature("f", CATEGORICAL, [], ["a"])
    with pytest.raises(DriftInputError, match="'f' is numeric, but its reference data holds"):
        check_feature("f", NUMERIC, ["1.5", "high"], [1.0])


def test_report_is_plain_json() -> None:
    reference = {"n": _normal(27, 200), "c": np.array(["a"] * 200, dtype=object)}
    current = {"n": _normal(28, 200, 1.0), "c": np.array(["a"] * 150 + [None] * 50, dtype=object)}

    report = check_dataset(reference, current, {"n": NUMERIC, "c": CATEGORICAL}).as_dict()

    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert report["drifted"] is True  # one of two features is the default share, 0.5
    assert (report["drifted_count"], report["feature_count"], report["drift_share"]) == (1, 2, 0.5)
    numeric, categorical = report["features"]
    assert numeric["test"] == "ks"
    assert numeric["drifted"] is True
    assert set(numeric) == {
        "feature",
        "kind",
        "test",
        "statistic",
        "p_value",
        "threshold",
        "drifted",
        "psi",
        "reference_count",
        "current_count",
        "reference_missing",
        "current_missing",
    }
    # One category on both sides: no drift, chi-squared 0 with p-value 1.
    assert (categorical["statistic"], categorical["p_value"], categorical["drifted"]) == (
        0.0,
        1.0,
        False,
    )
    assert categorical["current_missing"] == 50


def test_a_non_finite_statistic_is_stored_as_null() -> None:
    result = check_feature("f", NUMERIC, [1.0, 2.0], [1.0, 2.0])
    odd = DatasetDrift(features=(replace(result, statistic=float("nan")),), drift_share=0.5)

    assert odd.as_dict()["features"][0]["statistic"] is None
