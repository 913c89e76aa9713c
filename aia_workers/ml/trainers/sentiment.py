"""Rule-based sentiment with VADER, scored offline against labels when the data has them.

NLTK's ``SentimentIntensityAnalyzer`` normally loads its lexicon through
``nltk.data``, which wants the downloaded ``vader_lexicon`` package and (since
NLTK 3.9) refuses any path outside ``NLTK_DATA``, even as a ``file:`` URL. The
same lexicon ships inside the ``vaderSentiment`` package, so this module reads
that file itself and hands the text to NLTK's analyzer: no download, no network,
no change to NLTK's global search path.
"""

from __future__ import annotations

import importlib.resources
import math
import time
from collections import Counter
from functools import cache
from typing import Any

import pandas as pd
from nltk.sentiment.vader import SentimentIntensityAnalyzer, VaderConstants
from sklearn.metrics import accuracy_score, f1_score

from aia_workers.backbone.progress import ProgressReporter, discard_progress
from aia_workers.ml.contracts.tables import ColumnKind, DatasetError
from aia_workers.ml.trainers.fitted import Fitted, TrainingSpec, Trial, json_safe

__all__ = ["SENTIMENTS", "VaderModel", "lexicon_text", "normalise_label", "train_sentiment"]

SENTIMENTS = ("negative", "neutral", "positive")
_WORDS = {
    "positive": "positive",
    "pos": "positive",
    "negative": "negative",
    "neg": "negative",
    "neutral": "neutral",
    "neu": "neutral",
}
_REPORT_EVERY = 1_000  # rows between progress reports


def lexicon_text() -> str:
    """The VADER lexicon shipped in ``vaderSentiment`` (one ``word<TAB>valence…`` a line)."""
    resource = importlib.resources.files("vaderSentiment") / "vader_lexicon.txt"
    return resource.read_text(encoding="utf-8")


class _OfflineAnalyzer(SentimentIntensityAnalyzer):  # type: ignore[misc]  # NLTK is untyped
    """NLTK's analyzer built from lexicon text instead of an ``nltk.data`` resource."""

    def __init__(self, lexicon: str) -> None:
        # Not super().__init__: that goes through nltk.data.load (see the module docstring).
        self.lexicon_file = lexicon.strip()
        self.lexicon = self.make_lex_dict()
        self.constants = VaderConstants()


@cache
def _analyzer() -> _OfflineAnalyzer:
    # The lexicon is ~7,500 entries; parse it once per process, never pickle it.
    return _OfflineAnalyzer(lexicon_text())


class VaderModel:
    """VADER with AIA's thresholds; holds only settings, so it pickles to a few bytes.

    The compound score is in [-1, 1]; ``compound >= positive_threshold`` is
    "positive", ``compound <= negative_threshold`` "negative", else "neutral".
    """

    def __init__(
        self, text_column: str, positive_threshold: float = 0.05, negative_threshold: float = -0.05
    ) -> None:
        self.text_column = text_column
        self.positive_threshold = positive_threshold
        self.negative_threshold = negative_threshold

    def label(self, compound: float) -> str:
        if compound >= self.positive_threshold:
            return "positive"
        if compound <= self.negative_threshold:
            return "negative"
        return "neutral"

    def score(self, text: str) -> dict[str, Any]:
        """One row's prediction, compound score and pos/neu/neg proportions (each in [0, 1])."""
        scores = _analyzer().polarity_scores(text)
        compound = float(scores["compound"])
        return {
            "prediction": self.label(compound),
            "compound": compound,
            "scores": {k: float(scores[k]) for k in ("pos", "neu", "neg")},
        }

    def predict_rows(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        if self.text_column not in frame.columns:
            raise DatasetError(f"there is no column {self.text_column!r}", column=self.text_column)
        return [self.score(_text(v)) for v in frame[self.text_column]]


def normalise_label(value: Any) -> str | None:
    """A label as "positive", "negative" or "neutral"; None if missing or unrecognised.

    Accepted: positive/negative/neutral and pos/neg/neu in any case, and numbers by
    sign (1 positive, 0 neutral, -1 negative). A column of only 0 and 1 is the
    common binary convention instead (0 negative); ``train_sentiment`` handles that.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip().lower()
    if text in _WORDS:
        return _WORDS[text]
    try:
        number = float(text)
    except ValueError:
        return None
    if math.isnan(number):
        return None
    return "positive" if number > 0 else "negative" if number < 0 else "neutral"


def train_sentiment(
    frame: pd.DataFrame, spec: TrainingSpec, report: ProgressReporter = discard_progress
) -> Fitted:
    """Score every row with VADER; with ``spec.target`` labels, report accuracy and macro F1.

    Nothing is learned: the "fit" applies the fixed lexicon. Options
    ``positive_threshold`` and ``negative_threshold`` (compound units, in
    [-1, 1], negative < positive) move the neutral band from its ±0.05 default.
    Scoring stops at the time budget: the metrics then cover the rows scored
    (``details["rows_scored"]``).
    """
    started = time.perf_counter()
    column = _text_column(frame, spec)
    model = VaderModel(column, *_thresholds(spec.options))
    truth = _labels(frame, spec.target) if spec.target else None

    texts = [_text(v) for v in frame[column]]
    rows: list[dict[str, Any]] = []
    deadline = started + spec.time_budget_seconds
    for index, text in enumerate(texts):
        if index % _REPORT_EVERY == 0:
            if index and time.perf_counter() >= deadline:
                break
            report(index, len(texts), "scoring rows")
        rows.append(model.score(text))
    report(len(rows), len(texts), "done")
    predicted = [r["prediction"] for r in rows]
    if truth is not None:
        truth = truth[: len(rows)]

    details: dict[str, Any] = {
        "text_column": column,
        "predicted_labels": _distribution(predicted),
        "lexicon": "vaderSentiment/vader_lexicon.txt",
        "lexicon_entries": len(_analyzer().lexicon),
        "rows_scored": len(rows),
    }
    if truth is not None:
        pairs = [(t, p) for t, p in zip(truth, predicted, strict=True) if t is not None]
        y_true, y_pred = [t for t, _ in pairs], [p for _, p in pairs]
        labels = sorted(set(y_true))
        # Only the classes the labels use count: a "neutral" call on a pos/neg set is a miss.
        metrics = {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        }
        details["true_labels"] = _distribution(y_true)
        details["labelled_rows"] = len(y_true)
    else:
        compounds = [r["compound"] for r in rows]
        metrics = {
            "rows_scored": float(len(rows)),
            "mean_compound": sum(compounds) / len(compounds),
        }
    params = {
        "text_column": column,
        "positive_threshold": model.positive_threshold,
        "negative_threshold": model.negative_threshold,
    }
    fit_seconds = time.perf_counter() - started
    score = metrics.get("accuracy") if truth is not None else None
    return Fitted(
        model=model,
        estimator="vader",
        params=params,
        metrics=metrics,
        fit_seconds=fit_seconds,
        leaderboard=[Trial("vader", dict(params), score, fit_seconds)],
        details=json_safe(details),
    )


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _text_column(frame: pd.DataFrame, spec: TrainingSpec) -> str:
    candidates = spec.features or [c for c in spec.kinds if c != spec.target]
    texts = [c for c in candidates if spec.kinds.get(c) == ColumnKind.TEXT and c != spec.target]
    if not texts:
        raise DatasetError("there is no text column to score")
    if not spec.features and len(texts) > 1:
        raise DatasetError(
            f"several text columns ({', '.join(texts)}); choose one as the feature",
            column=texts[0],
        )
    if texts[0] not in frame.columns:
        raise DatasetError(f"there is no column {texts[0]!r}", column=texts[0])
    if len(frame) == 0:
        raise DatasetError("there are no rows to score", column=texts[0])
    return texts[0]


def _thresholds(options: Any) -> tuple[float, float]:
    values = []
    for name, default in (("positive_threshold", 0.05), ("negative_threshold", -0.05)):
        value = options.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1:
            raise ValueError(f"{name} must be a number in [-1, 1], not {value!r}")
        values.append(float(value))
    if values[1] >= values[0]:
        raise ValueError("negative_threshold must be below positive_threshold")
    return values[0], values[1]


def _labels(frame: pd.DataFrame, target: str) -> list[str | None]:
    if target not in frame.columns:
        raise DatasetError(f"there is no label column {target!r}", column=target)
    raw = frame[target].tolist()
    labels = [normalise_label(v) for v in raw]
    for row, (value, label) in enumerate(zip(raw, labels, strict=True), start=1):
        if label is None and _text(value).strip():
            raise DatasetError(
                f"row {row} of {target!r} holds {value!r}; expected positive, negative, "
                "neutral (or pos/neg/neu, or 1/0/-1)",
                column=target,
                row=row,
            )
    numbers = {_number(str(v)) for v, lab in zip(raw, labels, strict=True) if lab is not None}
    # A column of only 0 and 1 follows the binary convention (1 positive, 0 negative).
    if numbers == {0.0, 1.0}:
        labels = [
            None if lab is None else "negative" if lab == "neutral" else lab for lab in labels
        ]
    if all(lab is None for lab in labels):
        raise DatasetError(f"the label column {target!r} has no labels", column=target)
    return labels


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _distribution(labels: list[str]) -> dict[str, int]:
    counts = Counter(labels)
    return {name: counts.get(name, 0) for name in SENTIMENTS}
