"""The reference a model version's drift is measured against: a profile and a bounded sample.

Taken once, when the version is trained, from its training data and the
model's own predictions on it. The profile summarises every column (what a
report shows, and the bins PSI needs); the sample keeps raw values for the
two-sample tests, which need values rather than summaries.

Every column is profiled on one of two scales: numeric or categorical. A
column's values are first put on its scale by ``profiled_values``, and the
drift check puts current data through the same function, so both sides are
always compared on the same terms: dates as seconds since the epoch (drift of
a date column is a shift in time), text as its length in characters (a cheap
signal that inputs changed shape), booleans and categories as strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aia_workers.drift.contracts.checks import FeatureKind
from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.contracts.tables import ColumnKind

__all__ = [
    "QUANTILE_LEVELS",
    "TOP_CATEGORIES",
    "CategoricalProfile",
    "Histogram",
    "NumericProfile",
    "Reference",
    "ReferenceProfile",
    "ReferenceSample",
    "ValueProfile",
    "build_reference",
    "prediction_frame",
    "profile_values",
    "profiled_values",
]

QUANTILE_LEVELS: tuple[float, ...] = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
# Categories kept by name per column; the rest are counted together as "other",
# so a column of free-form identifiers cannot make the profile unbounded.
TOP_CATEGORIES = 50
# Numeric parts of a nested output (a classifier's probabilities) kept as columns:
# those with the highest mean, so a thousand-class model adds ten columns, not a thousand.
_NESTED_KEPT = 10
# Predictions are taken on at most this many training rows (a random subset, the
# sample among them): a profile of 100,000 predictions is as good as one of all,
# and predicting millions of rows again would cost as much as a fit.
_PREDICTED_ROWS = 100_000
_PROFILE_FORMAT = 1

PredictRows = Callable[[pd.DataFrame], list[dict[str, Any]]]


_SCALES: Mapping[ColumnKind, FeatureKind] = {
    ColumnKind.NUMERIC: FeatureKind.NUMERIC,
    ColumnKind.DATETIME: FeatureKind.NUMERIC,
    ColumnKind.TEXT: FeatureKind.NUMERIC,
    ColumnKind.CATEGORICAL: FeatureKind.CATEGORICAL,
    ColumnKind.BOOLEAN: FeatureKind.CATEGORICAL,
}


@dataclass(frozen=True, slots=True)
class Histogram:
    """``numpy.histogram`` of the present values: len(edges) == len(counts) + 1."""

    edges: list[float]
    counts: list[int]


@dataclass(frozen=True, slots=True)
class NumericProfile:
    """A numeric column: quantiles at ``QUANTILE_LEVELS``, a histogram; None where all missing."""

    kind: str
    count: int
    missing: int
    missing_share: float
    mean: float | None
    std: float | None  # population (ddof=0), the norm Wasserstein distance is divided by
    quantiles: list[float] | None
    histogram: Histogram | None
    scale: FeatureKind = FeatureKind.NUMERIC


@dataclass(frozen=True, slots=True)
class CategoricalProfile:
    """A categorical column: the ``TOP_CATEGORIES`` commonest values' counts, and the rest's."""

    kind: str
    count: int
    missing: int
    missing_share: float
    distinct: int
    categories: dict[str, int]  # commonest first
    other: int
    scale: FeatureKind = FeatureKind.CATEGORICAL


ValueProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """Per feature and per prediction output, a profile; JSON through ``as_json``/``from_json``."""

    rows: int
    predicted_rows: int
    features: dict[str, ValueProfile]
    predictions: dict[str, ValueProfile]
    quantile_levels: list[float] = field(default_factory=lambda: list(QUANTILE_LEVELS))

    def as_json(self) -> dict[str, Any]:
        return {
            "format": _PROFILE_FORMAT,
            "rows": self.rows,
            "predicted_rows": self.predicted_rows,
            "quantile_levels": list(self.quantile_levels),
            "features": {n: _profile_json(p) for n, p in self.features.items()},
            "predictions": {n: _profile_json(p) for n, p in self.predictions.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        if data.get("format") != _PROFILE_FORMAT:
            raise ValueError(f"unknown reference profile format {data.get('format')!r}")
        return cls(
            rows=int(data["rows"]),
            predicted_rows=int(data["predicted_rows"]),
            features={n: _profile_from_json(p) for n, p in data["features"].items()},
            predictions={n: _profile_from_json(p) for n, p in data["predictions"].items()},
            quantile_levels=[float(q) for q in data["quantile_levels"]],
        )


@dataclass(frozen=True, slots=True)
class ReferenceSample:
    """The same rows of features and of predictions, values on their profile's scale.

    Two frames rather than one so a feature and an output of the same name
    (a column called "prediction") never collide.
    """

    features: pd.DataFrame
    predictions: pd.DataFrame

    def __len__(self) -> int:
        return len(self.features)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": len(self.features),
            "features": _columns_json(self.features),
            "predictions": _columns_json(self.predictions),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], profile: ReferenceProfile) -> ReferenceSample:
        rows = int(data["rows"])
        return cls(
            features=_columns_frame(data["features"], profile.features, rows),
            predictions=_columns_frame(data["predictions"], profile.predictions, rows),
        )


@dataclass(frozen=True, slots=True)
class Reference:
    profile: ReferenceProfile
    sample: ReferenceSample


def build_reference(
    frame: pd.DataFrame,
    signature: Sequence[Mapping[str, Any]],
    task: MLTask,
    predict: PredictRows | None,
    *,
    sample_rows: int,
    seed: int,
) -> Reference:
    """The profile of ``frame``'s ``signature`` columns and of ``predict``'s outputs on its rows.

    ``signature`` is a version's: ``{"name", "kind"}`` per input column.
    ``predict`` is the model's ``predict_rows`` (None: no prediction profile).
    The sample is at most ``sample_rows`` rows drawn at random with ``seed``,
    so the same data and seed give the same sample.
    """
    if sample_rows < 1:
        raise ValueError(f"a reference sample needs at least one row, not {sample_rows}")
    kinds = {str(c["name"]): ColumnKind(c["kind"]) for c in signature}
    order = np.random.default_rng(seed).permutation(len(frame))
    sampled = np.sort(order[:sample_rows])
    features: dict[str, ValueProfile] = {}
    feature_sample: dict[str, pd.Series] = {}
    for name, kind in kinds.items():
        values = profiled_values(frame[name], kind)
        features[name] = profile_values(values, kind.value, _SCALES[kind])
        feature_sample[name] = values.iloc[sampled].reset_index(drop=True)
    predictions: dict[str, ValueProfile] = {}
    prediction_sample = pd.DataFrame(index=pd.RangeIndex(len(sampled)))
    predicted = np.sort(order[:_PREDICTED_ROWS]) if predict is not None else np.array([], int)
    if predict is not None and len(predicted):
        outputs, scales = prediction_frame(task, predict(frame.iloc[predicted][list(kinds)]))
        outputs = outputs[_kept_outputs(outputs, scales)]
        for name in outputs.columns:
            predictions[name] = profile_values(outputs[name], scales[name].value, scales[name])
        # The sample's rows are among the predicted ones (both are heads of one permutation).
        prediction_sample = outputs.iloc[np.searchsorted(predicted, sampled)].reset_index(drop=True)
    profile = ReferenceProfile(
        rows=len(frame),
        predicted_rows=len(predicted),
        features=features,
        predictions=predictions,
    )
    sample = ReferenceSample(
        features=pd.DataFrame(feature_sample, index=pd.RangeIndex(len(sampled))),
        predictions=prediction_sample,
    )
    return Reference(profile, sample)


def profiled_values(values: pd.Series, kind: ColumnKind) -> pd.Series:
    """``values`` (typed as by ``frame_from_csv``) on their kind's scale; missing as NaN/None.

    Numeric scales give float64 with NaN; categorical ones strings with None.
    """
    if kind == ColumnKind.NUMERIC:
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
        return numbers.where(np.isfinite(numbers))
    if kind == ColumnKind.DATETIME:
        stamps = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
        seconds = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        return seconds.astype(float)
    if kind == ColumnKind.TEXT:
        lengths = values.fillna("").astype(str).str.len().astype(float)
        return lengths.where(lengths > 0)
    labels = [None if pd.isna(v) else str(v) for v in values.tolist()]
    return pd.Series(labels, index=values.index, dtype=object)


def profile_values(values: pd.Series, kind: str, scale: FeatureKind) -> ValueProfile:
    """The profile of values already on ``scale`` (see ``profiled_values``)."""
    total = len(values)
    present = values.dropna()
    count = len(present)
    missing = total - count
    share = missing / total if total else 0.0
    if scale == FeatureKind.CATEGORICAL:
        counts = present.astype(str).value_counts(sort=False)
        # Commonest first, ties by name, so the same data always gives the same profile.
        ranked = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))
        kept = {str(value): int(n) for value, n in ranked[:TOP_CATEGORIES]}
        return CategoricalProfile(
            kind=kind,
            count=count,
            missing=missing,
            missing_share=share,
            distinct=len(ranked),
            categories=kept,
            other=count - sum(kept.values()),
        )
    numbers = present.to_numpy(dtype=float)
    if not count:
        return NumericProfile(kind, 0, missing, share, None, None, None, None)
    bin_counts, edges = np.histogram(numbers, bins="sturges")
    return NumericProfile(
        kind=kind,
        count=count,
        missing=missing,
        missing_share=share,
        mean=float(numbers.mean()),
        std=float(numbers.std()),
        quantiles=[float(q) for q in np.quantile(numbers, QUANTILE_LEVELS)],
        histogram=Histogram(edges=[float(e) for e in edges], counts=[int(c) for c in bin_counts]),
    )


def prediction_frame(
    task: MLTask, outputs: Sequence[Mapping[str, Any]]
) -> tuple[pd.DataFrame, dict[str, FeatureKind]]:
    """A model's outputs (``predict_rows``, or the prediction log) as columns with their scales.

    ``prediction`` is numeric for regression and a class otherwise; other
    numbers are numeric, strings and booleans categorical; a nested mapping
    (a classifier's ``probabilities``) gives one numeric column per key,
    named ``outer.key``. A forecast's step and timestamp are no drift signal
    and are left out.
    """
    columns: dict[str, list[Any]] = {}
    scales: dict[str, FeatureKind] = {}
    rows = len(outputs)

    def put(name: str, row: int, value: Any, scale: FeatureKind) -> None:
        if name not in columns:
            columns[name] = [None] * rows
            scales[name] = scale
        columns[name][row] = value

    for row, output in enumerate(outputs):
        for key, value in output.items():
            if key in ("step", "timestamp") or value is None:
                continue
            if key == "prediction":
                numeric = task == MLTask.REGRESSION
                put(key, row, _number(value) if numeric else str(value), _scale(numeric))
            elif isinstance(value, Mapping):
                for inner, number in value.items():
                    put(f"{key}.{inner}", row, _number(number), FeatureKind.NUMERIC)
            elif isinstance(value, bool | str):
                put(key, row, _category(value), FeatureKind.CATEGORICAL)
            elif isinstance(value, int | float):
                put(key, row, _number(value), FeatureKind.NUMERIC)
    frame = pd.DataFrame(
        {
            name: pd.Series(values, dtype=float if scales[name] == FeatureKind.NUMERIC else object)
            for name, values in columns.items()
        },
        index=pd.RangeIndex(rows),
    )
    return frame, scales


def _kept_outputs(outputs: pd.DataFrame, scales: Mapping[str, FeatureKind]) -> list[str]:
    nested: dict[str, list[str]] = {}
    kept: list[str] = []
    for name in outputs.columns:
        outer, dot, _ = name.partition(".")
        if dot and scales[name] == FeatureKind.NUMERIC:
            nested.setdefault(outer, []).append(name)
        else:
            kept.append(name)
    for names in nested.values():
        means = outputs[names].mean()
        kept.extend(sorted(names, key=lambda n: (-float(means[n]), n))[:_NESTED_KEPT])
    return kept


def _scale(numeric: bool) -> FeatureKind:
    return FeatureKind.NUMERIC if numeric else FeatureKind.CATEGORICAL


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _category(value: bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _profile_json(profile: ValueProfile) -> dict[str, Any]:
    return asdict(profile)


def _profile_from_json(data: Mapping[str, Any]) -> ValueProfile:
    fields = {k: v for k, v in data.items() if k != "scale"}
    if data["scale"] == FeatureKind.CATEGORICAL:
        return CategoricalProfile(**fields)
    histogram = fields.pop("histogram")
    return NumericProfile(**fields, histogram=Histogram(**histogram) if histogram else None)


def _columns_json(frame: pd.DataFrame) -> dict[str, list[Any]]:
    # None for missing, never NaN: PostgreSQL's JSON and strict parsers refuse NaN.
    return {
        str(name): [None if pd.isna(v) else v for v in frame[name].tolist()]
        for name in frame.columns
    }


def _columns_frame(
    columns: Mapping[str, Sequence[Any]], profiles: Mapping[str, ValueProfile], rows: int
) -> pd.DataFrame:
    data: dict[str, pd.Series] = {}
    for name, profile in profiles.items():
        values = columns[name]
        if len(values) != rows:
            raise ValueError(f"the sample's column {name!r} has {len(values)} values, not {rows}")
        if profile.scale == FeatureKind.NUMERIC:
            data[name] = pd.Series([np.nan if v is None else v for v in values], dtype=float)
        else:
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data, index=pd.RangeIndex(rows))
