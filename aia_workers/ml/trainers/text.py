"""Text classification: stemmed TF-IDF n-grams and a linear model chosen by cross-validation.

Tokenising and stemming use NLTK pieces that need no downloaded data
(a regular-expression tokenizer and the Snowball stemmer), so training and
serving never touch the network.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from nltk.stem import SnowballStemmer
from nltk.tokenize import RegexpTokenizer
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from aia_workers.backbone.progress import ProgressReporter, discard_progress
from aia_workers.ml.budget import BudgetExceeded
from aia_workers.ml.contracts.tables import ColumnKind, DatasetError
from aia_workers.ml.trainers.convergence import collect_convergence_warnings
from aia_workers.ml.trainers.fitted import Fitted, TrainingSpec, Trial, json_safe
from aia_workers.ml.trainers.frames import classification_labels

__all__ = ["CANDIDATES", "StemmingTokenizer", "TextClassifier", "train_text_classifier"]

# Words, numbers and contractions ("don't", "chef's"); punctuation carries little topic signal.
_WORD_PATTERN = r"\w+(?:['\u2019]\w+)*"  # re reads \u2019, the typographic apostrophe
_HOLDOUT = 0.2
_MIN_ROWS = 10
_MAX_FOLDS = 5
# CalibratedClassifierCV splits each training fold again; below this many rows per class
# those inner folds would hold too few examples of a class to calibrate on.
_MIN_CLASS_ROWS_FOR_SVC = 10
_SCORERS = {"f1": "f1_macro", "accuracy": "accuracy", "roc_auc": "roc_auc"}


@cache
def _tokenizer() -> RegexpTokenizer:
    return RegexpTokenizer(_WORD_PATTERN)


@cache
def _stemmer(language: str) -> SnowballStemmer:
    return SnowballStemmer(language)


class StemmingTokenizer:
    """Lower-cased, Snowball-stemmed word tokens; picklable, so fitted vectorizers are too.

    Holds only the language name: the NLTK objects are rebuilt (once per process)
    after unpickling instead of travelling inside every stored model.
    """

    def __init__(self, language: str = "english") -> None:
        self.language = language

    def __call__(self, text: str) -> list[str]:
        stem = _stemmer(self.language).stem
        return [stem(token) for token in _tokenizer().tokenize(text.lower())]

    def __repr__(self) -> str:
        return f"StemmingTokenizer({self.language!r})"


@dataclass(frozen=True, slots=True)
class _Candidate:
    family: str
    params: dict[str, Any]
    build: Callable[[int], BaseEstimator]


CANDIDATES: dict[str, _Candidate] = {
    "logistic_regression_c10": _Candidate(
        "logistic_regression",
        {"C": 10.0},
        lambda seed: LogisticRegression(C=10.0, max_iter=2000, random_state=seed),
    ),
    "logistic_regression_c1": _Candidate(
        "logistic_regression",
        {"C": 1.0},
        lambda seed: LogisticRegression(C=1.0, max_iter=2000, random_state=seed),
    ),
    # LinearSVC has no probabilities of its own; sigmoid calibration supplies them.
    "linear_svc": _Candidate(
        "linear_svc",
        {"C": 1.0, "calibration": "sigmoid"},
        lambda seed: CalibratedClassifierCV(
            LinearSVC(C=1.0, max_iter=5000, random_state=seed), cv=3, ensemble=False
        ),
    ),
}


def _pipeline(candidate: _Candidate, seed: int) -> Pipeline:
    vectorizer = TfidfVectorizer(
        tokenizer=StemmingTokenizer("english"),
        token_pattern=None,  # the tokenizer decides; silences scikit-learn's notice
        lowercase=True,
        strip_accents="unicode",
        ngram_range=(1, 2),
        sublinear_tf=True,
        max_features=200_000,
    )
    return Pipeline([("tfidf", vectorizer), ("model", candidate.build(seed))])


class TextClassifier:
    """A fitted text pipeline and the columns it joins; serves labels and probabilities."""

    def __init__(self, pipeline: Pipeline, text_columns: list[str]) -> None:
        self.pipeline = pipeline
        self.text_columns = text_columns
        self.classes: list[Any] = json_safe(pipeline.classes_)

    def predict_rows(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """``{"prediction": label, "probabilities": {label: p}}`` per row (p in [0, 1])."""
        if len(frame) == 0:
            return []
        probabilities = self.pipeline.predict_proba(_documents(frame, self.text_columns))
        keys = [str(c) for c in self.classes]
        return [
            {
                "prediction": self.classes[int(np.argmax(row))],
                "probabilities": {k: float(p) for k, p in zip(keys, row, strict=True)},
            }
            for row in probabilities
        ]


def train_text_classifier(
    frame: pd.DataFrame, spec: TrainingSpec, report: ProgressReporter = discard_progress
) -> Fitted:
    """Choose a linear text model by stratified CV on 80 % of rows, score it on the rest.

    ``spec.time_budget_seconds`` bounds the search: a candidate whose expected
    cost (that of the previous one) would overrun it is skipped, but the first
    always runs. ``spec.options["estimator"]`` forces one candidate (a key of
    ``CANDIDATES``) or a family ("logistic_regression", "linear_svc").
    """
    started = time.perf_counter()
    frame = frame.reset_index(drop=True)  # rows are matched by label below; labels must be unique
    columns = _text_columns(frame, spec)
    target = _target(frame, spec)
    labels = classification_labels(target)
    _check_labels(labels, str(target.name))
    docs = _documents(frame.loc[labels.index], columns)
    if not any(StemmingTokenizer()(d) for d in docs):
        raise DatasetError(f"column {columns[0]!r} holds no words", column=columns[0])
    scoring = _scoring(spec.metric, labels.nunique())

    x_train, x_test, y_train, y_test = train_test_split(
        docs, labels, test_size=_HOLDOUT, random_state=spec.seed, stratify=labels
    )
    smallest = int(y_train.value_counts().min())
    names = _chosen(spec.options.get("estimator"), smallest)
    folds = min(_MAX_FOLDS, smallest)
    total = len(names) + 1
    caught: list[str] = []
    search = _Search()
    try:
        for step, name in enumerate(names):
            candidate = CANDIDATES[name]
            spent = time.perf_counter() - started
            if search.leaderboard and spent + search.last_cost > spec.time_budget_seconds:
                skipped = f"skipped: the {spec.time_budget_seconds:g} s budget would be overrun"
                search.leaderboard.append(Trial(name, candidate.params, None, 0.0, skipped))
                continue
            report(step, total, f"trying {name}")
            t0 = time.perf_counter()
            score: float | None = None
            error: str | None = None
            if len(names) > 1 and folds >= 2:
                cv = StratifiedKFold(folds, shuffle=True, random_state=spec.seed)
                try:
                    with collect_convergence_warnings(caught):
                        result = cross_validate(
                            _pipeline(candidate, spec.seed),
                            x_train,
                            y_train,
                            cv=cv,
                            scoring=scoring,
                            error_score="raise",
                            return_estimator=True,
                        )
                    score = float(np.mean(result["test_score"]))
                    if score > search.best_score:
                        search.best_score, search.fold_model = score, result["estimator"][-1]
                except ValueError as exc:  # one broken candidate must not sink the search
                    error = str(exc)
            search.last_cost = time.perf_counter() - t0
            search.leaderboard.append(Trial(name, candidate.params, score, search.last_cost, error))
    except BudgetExceeded:
        # The run's hard stop: no time left to refit, but a scored candidate can serve.
        if search.fold_model is None:
            raise
        search.interrupted = True

    leaderboard = search.leaderboard
    usable = [t for t in leaderboard if t.error is None]
    if not usable:
        raise DatasetError(f"no text model could be fitted: {leaderboard[0].error}")
    best = max(usable, key=lambda t: -math.inf if t.score is None else t.score)
    report(len(names), total, f"fitting {best.estimator}")
    pipeline, served = _final_fit(
        CANDIDATES[best.estimator], spec.seed, x_train, y_train, search, caught
    )
    model = TextClassifier(pipeline, columns)
    metrics = _metrics(pipeline, x_test, y_test)
    report(total, total, "done")
    vectorizer: TfidfVectorizer = pipeline.named_steps["tfidf"]
    return Fitted(
        model=model,
        estimator=CANDIDATES[best.estimator].family,
        params=json_safe({"candidate": best.estimator, **CANDIDATES[best.estimator].params}),
        metrics=metrics,
        fit_seconds=time.perf_counter() - started,
        leaderboard=leaderboard,
        details=json_safe(
            {
                "text_columns": columns,
                "classes": model.classes,
                "rows": {"train": len(y_train), "holdout": len(y_test)},
                "cv_folds": folds if len(names) > 1 and folds >= 2 else 0,
                "cv_metric": scoring,
                "vocabulary_size": len(vectorizer.vocabulary_),
                "warnings": sorted(set(caught)),
                "served": served,
            }
        ),
    )


@dataclass(slots=True)
class _Search:
    """The candidates tried so far, and the best one's last fold model to fall back on."""

    leaderboard: list[Trial] = field(default_factory=list)
    last_cost: float = 0.0  # seconds the last candidate took: what the next is expected to
    best_score: float = -math.inf
    fold_model: Pipeline | None = None
    interrupted: bool = False


def _final_fit(
    candidate: _Candidate,
    seed: int,
    x: pd.Series,
    y: pd.Series,
    search: _Search,
    caught: list[str],
) -> tuple[Pipeline, str]:
    """The model to serve: ``candidate`` refitted on ``x``, or the best fold model if time ran out.

    Says which ("refit" or "fold_model"); with no fold model to fall back on,
    the run's BudgetExceeded goes on.
    """
    if search.interrupted and search.fold_model is not None:
        return search.fold_model, "fold_model"
    pipeline = _pipeline(candidate, seed)
    try:
        with collect_convergence_warnings(caught):
            pipeline.fit(x, y)
    except BudgetExceeded:
        if search.fold_model is None:
            raise
        return search.fold_model, "fold_model"
    return pipeline, "refit"


def _text_columns(frame: pd.DataFrame, spec: TrainingSpec) -> list[str]:
    usable = (ColumnKind.TEXT, ColumnKind.CATEGORICAL)
    if spec.features:
        columns = [c for c in spec.features if c != spec.target and spec.kinds.get(c) in usable]
    else:
        columns = [c for c, k in spec.kinds.items() if k == ColumnKind.TEXT and c != spec.target]
    if not columns:
        raise DatasetError("there is no text column to learn from")
    for column in columns:
        if column not in frame.columns:
            raise DatasetError(f"there is no column {column!r}", column=column)
    return columns


def _target(frame: pd.DataFrame, spec: TrainingSpec) -> pd.Series:
    if not spec.target or spec.target not in frame.columns:
        raise DatasetError(f"there is no label column {spec.target!r}", column=spec.target)
    values = frame[spec.target]
    present = values.notna() & (values.astype(str).str.strip() != "")
    return values[present]


def _check_labels(labels: pd.Series, column: str) -> None:
    counts = labels.value_counts()
    if len(counts) < 2:
        raise DatasetError(f"the label column {column!r} has a single class", column=column)
    if counts.min() < 2:
        rare = counts.idxmin()
        raise DatasetError(
            f"class {rare!r} of {column!r} has a single row; each class needs at least 2",
            column=column,
        )
    # The stratified holdout needs at least one row of every class.
    if len(labels) < _MIN_ROWS or math.ceil(len(labels) * _HOLDOUT) < len(counts):
        raise DatasetError(
            f"{len(labels)} labelled rows are too few for {len(counts)} classes", column=column
        )


def _documents(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    for column in columns:
        if column not in frame.columns:
            raise DatasetError(f"there is no column {column!r}", column=column)
    cells = frame[columns].astype(object).where(frame[columns].notna(), "").astype(str)
    return cells.agg(" ".join, axis=1) if len(columns) > 1 else cells[columns[0]]


def _scoring(metric: str | None, classes: int) -> str:
    name = metric or "f1"
    if name not in _SCORERS:
        raise ValueError(f"unknown metric {name!r} for text; known: {', '.join(_SCORERS)}")
    if name == "roc_auc" and classes > 2:
        return "roc_auc_ovr"
    return _SCORERS[name]


def _chosen(forced: object, smallest_class: int) -> list[str]:
    names = list(CANDIDATES)
    if smallest_class < _MIN_CLASS_ROWS_FOR_SVC:
        names.remove("linear_svc")
    if forced is None:
        return names
    picked = [n for n in CANDIDATES if forced in (n, CANDIDATES[n].family)]
    if not picked:
        known = ", ".join(sorted({*CANDIDATES, *(c.family for c in CANDIDATES.values())}))
        raise ValueError(f"unknown text estimator {forced!r}; known: {known}")
    if not set(picked) & set(names):
        raise DatasetError(
            f"{forced!r} needs at least {_MIN_CLASS_ROWS_FOR_SVC} training rows per class"
        )
    return [n for n in picked if n in names]


def _metrics(pipeline: Pipeline, x: pd.Series, y: pd.Series) -> dict[str, float]:
    predicted = pipeline.predict(x)
    scores = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted, average="macro")),
    }
    if len(pipeline.classes_) == 2:
        scores["roc_auc"] = float(roc_auc_score(y, pipeline.predict_proba(x)[:, 1]))
    return scores
