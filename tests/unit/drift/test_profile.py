"""Reference profiles: scales, missing shares, quantiles, histograms, bounds, the sample."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aia_workers.drift.contracts.checks import FeatureKind
from aia_workers.drift.profile import (
    QUANTILE_LEVELS,
    TOP_CATEGORIES,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    ReferenceSample,
    build_reference,
    prediction_frame,
)
from aia_workers.ml.contracts.payloads import MLTask

SIGNATURE = [
    {"name": "x", "kind": "numeric"},
    {"name": "colour", "kind": "categorical"},
    {"name": "flag", "kind": "boolean"},
    {"name": "when", "kind": "datetime"},
    {"name": "note", "kind": "text"},
]


def _frame(rows: int = 2_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 2, rows)
    x[::4] = np.nan  # a quarter missing
    colour = rng.choice(["red", "green", "blue"], rows).astype(object)
    colour[::10] = None
    return pd.DataFrame(
        {
            "x": x,
            "colour": colour,
            "flag": rng.choice(["true", "false"], rows).astype(object),
            "when": [f"2024-03-{1 + i % 28:02d}T12:00:00" for i in range(rows)],
            "note": ["" if i % 5 == 0 else "a" * (1 + i % 7) for i in range(rows)],
            "label": rng.choice([0, 1], rows),
        }
    )


def _classifier(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A stand-in model: its outputs look like the tabular classifier's."""
    out = []
    for x in frame["x"].fillna(0):
        p = 1 / (1 + np.exp(-(x - 10)))
        out.append({"prediction": int(p > 0.5), "probabilities": {"0": 1 - p, "1": p}})
    return out


def _reference(frame: pd.DataFrame | None = None, rows: int = 500, seed: int = 7):
    frame = _frame() if frame is None else frame
    return build_reference(
        frame, SIGNATURE, MLTask.CLASSIFICATION, _classifier, sample_rows=rows, seed=seed
    )


def test_each_kind_is_profiled_on_its_scale() -> None:
    profile = _reference().profile
    scales = {name: p.scale for name, p in profile.features.items()}
    assert scales == {
        "x": FeatureKind.NUMERIC,
        "colour": FeatureKind.CATEGORICAL,
        "flag": FeatureKind.CATEGORICAL,
        "when": FeatureKind.NUMERIC,
        "note": FeatureKind.NUMERIC,
    }
    assert {name: p.kind for name, p in profile.features.items()} == {
        c["name"]: c["kind"] for c in SIGNATURE
    }
    assert set(profile.features["flag"].categories) == {"true", "false"}  # type: ignore[union-attr]
    # Dates as seconds since the epoch; text as its length.
    when = profile.features["when"]
    assert isinstance(when, NumericProfile)
    assert when.quantiles is not None
    assert when.quantiles[0] == pd.Timestamp("2024-03-01T12:00:00Z").timestamp()
    note = profile.features["note"]
    assert isinstance(note, NumericProfile)
    assert note.quantiles is not None
    assert (note.quantiles[0], note.quantiles[-1]) == (1.0, 7.0)


def test_counts_and_missing_shares() -> None:
    frame = _frame()
    profile = _reference(frame).profile
    assert profile.rows == len(frame) == profile.predicted_rows
    x, colour, note = (profile.features[n] for n in ("x", "colour", "note"))
    assert (x.count, x.missing, x.missing_share) == (1_500, 500, 0.25)
    assert (colour.count, colour.missing, colour.missing_share) == (1_800, 200, 0.1)
    # Empty text is missing text.
    assert note.missing_share == 0.2


def test_quantiles_and_moments_are_numpys() -> None:
    frame = _frame()
    x = _reference(frame).profile.features["x"]
    assert isinstance(x, NumericProfile)
    values = frame["x"].dropna().to_numpy()
    assert x.quantiles == pytest.approx(np.quantile(values, QUANTILE_LEVELS), abs=0)
    assert x.mean == pytest.approx(values.mean(), rel=1e-12)
    assert x.std == pytest.approx(values.std(), rel=1e-12)


def test_histogram_counts_every_present_value_once() -> None:
    frame = _frame()
    x = _reference(frame).profile.features["x"]
    assert isinstance(x, NumericProfile)
    assert x.histogram is not None
    assert sum(x.histogram.counts) == x.count
    assert len(x.histogram.edges) == len(x.histogram.counts) + 1
    assert x.histogram.edges == sorted(x.histogram.edges)
    assert x.histogram.edges[0] == np.nanmin(frame["x"])
    assert x.histogram.edges[-1] == np.nanmax(frame["x"])


def test_a_column_with_no_values_has_no_quantiles() -> None:
    frame = _frame()
    frame["x"] = np.nan
    x = _reference(frame).profile.features["x"]
    assert isinstance(x, NumericProfile)
    assert (x.count, x.missing_share, x.quantiles, x.histogram) == (0, 1.0, None, None)


def test_categories_are_bounded_with_the_rest_as_other() -> None:
    rows = 5_000
    frame = _frame(rows)
    # Many distinct values, the first three much commoner than the rest.
    frame["colour"] = [f"v{i % 3}" if i % 2 else f"id{i}" for i in range(rows)]
    colour = _reference(frame).profile.features["colour"]
    assert isinstance(colour, CategoricalProfile)
    assert len(colour.categories) == TOP_CATEGORIES
    assert set(list(colour.categories)[:3]) == {"v0", "v1", "v2"}
    counts = list(colour.categories.values())
    assert counts == sorted(counts, reverse=True)
    assert colour.distinct == 3 + rows // 2
    assert sum(colour.categories.values()) + colour.other == colour.count == rows


def test_predictions_are_profiled_by_output() -> None:
    profile = _reference().profile
    prediction = profile.predictions["prediction"]
    assert isinstance(prediction, CategoricalProfile)
    assert set(prediction.categories) == {"0", "1"}
    assert sum(prediction.categories.values()) == profile.predicted_rows
    probability = profile.predictions["probabilities.1"]
    assert isinstance(probability, NumericProfile)
    assert probability.quantiles is not None
    assert 0 <= probability.quantiles[0] <= probability.quantiles[-1] <= 1


def test_regression_predictions_are_numeric_and_many_classes_are_bounded() -> None:
    frame, scales = prediction_frame(MLTask.REGRESSION, [{"prediction": 1.5}, {"prediction": 2}])
    assert scales == {"prediction": FeatureKind.NUMERIC}
    assert frame["prediction"].tolist() == [1.5, 2.0]

    def many(frame: pd.DataFrame) -> list[dict[str, Any]]:
        labels = [str(k) for k in range(40)]
        share = {k: (0.5 if k == "7" else 0.5 / 39) for k in labels}
        return [{"prediction": "7", "probabilities": share} for _ in range(len(frame))]

    profile = build_reference(
        _frame(), SIGNATURE, MLTask.CLASSIFICATION, many, sample_rows=10, seed=0
    ).profile
    kept = [n for n in profile.predictions if n.startswith("probabilities.")]
    assert len(kept) == 10
    assert kept[0] == "probabilities.7"


def test_anomaly_outputs() -> None:
    outputs = [{"anomaly": True, "score": 0.3, "prediction": "anomaly"}]
    frame, scales = prediction_frame(MLTask.ANOMALY_DETECTION, outputs)
    assert scales == {
        "anomaly": FeatureKind.CATEGORICAL,
        "score": FeatureKind.NUMERIC,
        "prediction": FeatureKind.CATEGORICAL,
    }
    assert frame.iloc[0].tolist() == ["true", 0.3, "anomaly"]


def test_the_sample_is_bounded_seeded_and_aligned() -> None:
    frame = _frame(3_000)
    first = _reference(frame, rows=400, seed=3).sample
    assert len(first) == 400 == len(first.predictions)
    again = _reference(frame, rows=400, seed=3).sample
    pd.testing.assert_frame_equal(first.features, again.features)
    pd.testing.assert_frame_equal(first.predictions, again.predictions)
    other = _reference(frame, rows=400, seed=4).sample
    assert not first.features["x"].equals(other.features["x"])
    # Each sampled row's prediction is the model's on that very row.
    expected = [str(p["prediction"]) for p in _classifier(first.features)]
    assert first.predictions["prediction"].tolist() == expected
    # A table smaller than the bound is kept whole.
    small = _reference(frame.head(50), rows=400).sample
    assert len(small) == 50


def test_the_profile_and_sample_round_trip_through_strict_json() -> None:
    reference = _reference()
    text = json.dumps(reference.profile.as_json(), allow_nan=False)
    profile = ReferenceProfile.from_json(json.loads(text))
    assert profile == reference.profile
    sample_text = json.dumps(reference.sample.as_json(), allow_nan=False)
    sample = ReferenceSample.from_json(json.loads(sample_text), profile)
    pd.testing.assert_frame_equal(sample.features, reference.sample.features)
    pd.testing.assert_frame_equal(sample.predictions, reference.sample.predictions)


def test_without_a_model_there_are_no_predictions() -> None:
    series = [{"name": "x", "kind": "numeric"}]
    reference = build_reference(_frame(), series, MLTask.FORECASTING, None, sample_rows=100, seed=0)
    assert reference.profile.predictions == {}
    assert reference.profile.predicted_rows == 0
    assert list(reference.sample.features.columns) == ["x"]
    assert reference.sample.predictions.empty
