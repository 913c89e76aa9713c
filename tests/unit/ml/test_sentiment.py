"""VADER sentiment: clear cases right, labels normalised, and nothing downloaded."""

from __future__ import annotations

import pickle

import nltk
import pandas as pd
import pytest

from aia_workers.ml.contracts.tables import ColumnKind, DatasetError
from aia_workers.ml.trainers import sentiment
from aia_workers.ml.trainers.fitted import TrainingSpec
from aia_workers.ml.trainers.sentiment import VaderModel, normalise_label, train_sentiment

POSITIVE = "I love this, it is wonderful and works great!"
NEGATIVE = "This is terrible, I hate it, worst purchase ever."
NEUTRAL = "The package arrived on Tuesday."

_REVIEWS = [
    ("Absolutely fantastic service, the staff were friendly and helpful.", "positive"),
    ("Great value, I am very happy with it.", "positive"),
    ("Best phone I have ever owned, highly recommend!", "positive"),
    ("The food was delicious and the view was beautiful.", "positive"),
    ("Lovely hotel, comfortable beds and a nice breakfast.", "positive"),
    ("Works perfectly, excellent quality.", "positive"),
    ("Awful experience, the driver was rude and late.", "negative"),
    ("The screen broke after a week, very disappointing.", "negative"),
    ("Horrible smell and the room was dirty.", "negative"),
    ("I regret buying this, it is useless and cheap.", "negative"),
    ("Terrible support, nobody answered my emails.", "negative"),
    ("The soup was cold and bland, a sad meal.", "negative"),
    ("The order number is 4471.", "neutral"),
    ("The store opens at nine on weekdays.", "neutral"),
    ("It comes in blue and grey.", "neutral"),
    ("The manual is forty pages long.", "neutral"),
]


def _spec(target: str | None = "label", **options: object) -> TrainingSpec:
    kinds = {"review": ColumnKind.TEXT, "label": ColumnKind.CATEGORICAL}
    return TrainingSpec(
        target=target,
        features=["review"],
        kinds=kinds,
        time_budget_seconds=30,
        options=options,
    )


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("nltk.download must never be called")

    monkeypatch.setattr(nltk, "download", refuse)
    monkeypatch.setattr(nltk.downloader, "download", refuse)
    # A fresh analyzer per test, so building one also happens under the guard.
    sentiment._analyzer.cache_clear()


def test_clear_cases() -> None:
    model = VaderModel("review")
    rows = model.predict_rows(pd.DataFrame({"review": [POSITIVE, NEGATIVE, NEUTRAL, ""]}))
    assert [r["prediction"] for r in rows] == ["positive", "negative", "neutral", "neutral"]
    assert rows[0]["compound"] > 0.5 > -0.5 > rows[1]["compound"]
    for row in rows[:3]:
        assert set(row["scores"]) == {"pos", "neu", "neg"}
        assert sum(row["scores"].values()) == pytest.approx(1.0, abs=0.01)


def test_accuracy_against_labels() -> None:
    frame = pd.DataFrame(_REVIEWS, columns=["review", "label"])
    fitted = train_sentiment(frame, _spec())
    assert fitted.estimator == "vader"
    # Plain facts are VADER's weak spot ("number" and "grey" carry a little valence): 14 of 16.
    assert fitted.metrics["accuracy"] >= 0.85
    assert fitted.metrics["f1"] >= 0.8
    assert fitted.details["true_labels"] == {"negative": 6, "neutral": 4, "positive": 6}
    assert sum(fitted.details["predicted_labels"].values()) == len(_REVIEWS)


def test_binary_and_numeric_labels_are_normalised() -> None:
    polar = [(text, label) for text, label in _REVIEWS if label != "neutral"]
    as_words = pd.DataFrame(polar, columns=["review", "label"])
    as_binary = as_words.assign(label=[1.0 if lab == "positive" else 0.0 for _, lab in polar])
    as_short = as_words.assign(label=[lab[:3].upper() for _, lab in polar])
    scores = {
        name: train_sentiment(frame, _spec()).metrics
        for name, frame in {"words": as_words, "binary": as_binary, "short": as_short}.items()
    }
    assert scores["words"] == scores["binary"] == scores["short"]
    assert scores["words"]["accuracy"] >= 0.8
    assert [normalise_label(v) for v in (-1, 0, 1.0, "+1", " Neu ", None, "meh")] == [
        "negative",
        "neutral",
        "positive",
        "positive",
        "neutral",
        None,
        None,
    ]


def test_unlabelled_rows_are_scored() -> None:
    frame = pd.DataFrame({"review": [POSITIVE, NEGATIVE, NEUTRAL, POSITIVE]})
    progress: list[tuple[int, int]] = []
    fitted = train_sentiment(
        frame, _spec(target=None), lambda c, t, m=None: progress.append((c, t))
    )
    assert fitted.metrics["rows_scored"] == 4
    assert 0 < fitted.metrics["mean_compound"] < 1
    assert fitted.details["predicted_labels"] == {"negative": 1, "neutral": 1, "positive": 2}
    assert progress[-1] == (4, 4)


def test_thresholds_move_the_neutral_band() -> None:
    frame = pd.DataFrame({"review": ["Not bad at all.", NEGATIVE]})
    wide = train_sentiment(frame, _spec(target=None, positive_threshold=0.6))
    rows = wide.model.predict_rows(frame)
    assert [r["prediction"] for r in rows] == ["neutral", "negative"]
    assert wide.params["positive_threshold"] == 0.6
    for bad in (
        {"positive_threshold": 2},
        {"negative_threshold": "low"},
        {"negative_threshold": 0.1},
    ):
        with pytest.raises(ValueError, match="threshold"):
            train_sentiment(frame, _spec(target=None, **bad))


def test_pickle_round_trip_is_small_and_equal() -> None:
    fitted = train_sentiment(pd.DataFrame(_REVIEWS, columns=["review", "label"]), _spec())
    blob = pickle.dumps(fitted.model)
    assert len(blob) < 1_000  # settings only: the lexicon is rebuilt, not stored
    sentiment._analyzer.cache_clear()
    frame = pd.DataFrame({"review": [POSITIVE, NEGATIVE, NEUTRAL]})
    assert pickle.loads(blob).predict_rows(frame) == fitted.model.predict_rows(frame)


def test_bad_input_names_the_column() -> None:
    frame = pd.DataFrame(_REVIEWS, columns=["review", "label"])
    with pytest.raises(DatasetError) as caught:
        train_sentiment(frame.assign(label=["positive"] * 15 + ["great"]), _spec())
    assert (caught.value.column, caught.value.row) == ("label", 16)
    with pytest.raises(DatasetError) as caught:
        train_sentiment(frame.drop(columns="review"), _spec())
    assert caught.value.column == "review"
    with pytest.raises(DatasetError) as caught:
        train_sentiment(frame.drop(columns="label"), _spec())
    assert caught.value.column == "label"
    with pytest.raises(DatasetError) as caught:
        VaderModel("review").predict_rows(frame[["label"]])
    assert caught.value.column == "review"
    kinds = {"a": ColumnKind.TEXT, "b": ColumnKind.TEXT}
    spec = TrainingSpec(target=None, features=[], kinds=kinds, time_budget_seconds=1)
    with pytest.raises(DatasetError, match="several text columns"):
        train_sentiment(pd.DataFrame({"a": ["x"], "b": ["y"]}), spec)
