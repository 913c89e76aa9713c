"""Text classification on short sentences about sports, cooking and finance."""

from __future__ import annotations

import pickle
import random
from dataclasses import replace

import pandas as pd
import pytest

from aia_workers.ml.contracts.tables import ColumnKind, DatasetError
from aia_workers.ml.trainers.fitted import TrainingSpec
from aia_workers.ml.trainers.text import StemmingTokenizer, train_text_classifier

_TOPICS = {
    "sports": (
        ["The striker", "Our goalkeeper", "The home team", "The coach", "The young sprinter"],
        [
            "scored twice in the second half",
            "was running drills before the match",
            "won the championship final on penalties",
            "trained hard for the marathon",
            "missed an easy goal in extra time",
            "celebrated the victory with the fans",
            "signed a new contract with the club",
            "injured a knee during the tournament",
            "earned a bonus after the club reported record profits",
        ],
        ["last night.", "this season.", "at the stadium.", "despite the rain.", "again."],
    ),
    "cooking": (
        ["My grandmother", "The chef", "Our neighbour", "The baker", "I"],
        [
            "simmered the tomato sauce with garlic",
            "baked a loaf of sourdough bread",
            "whisked eggs and sugar for the cake",
            "roasted the vegetables in olive oil",
            "chopped onions for the soup",
            "seasoned the chicken with pepper and thyme",
            "kneaded the dough for fresh pasta",
            "fried the potatoes until crisp",
            "ran out of butter and bought more at the market",
        ],
        ["for dinner.", "this morning.", "in the oven.", "for the family.", "again."],
    ),
    "finance": (
        ["The central bank", "Investors", "The fund manager", "Our accountant", "The company"],
        [
            "raised interest rates by a quarter point",
            "sold shares after the earnings report",
            "reported higher quarterly profits",
            "cut the dividend to save cash",
            "bought government bonds as inflation fell",
            "warned about rising debt and loan defaults",
            "moved savings into an index fund",
            "filed the annual tax return",
            "sponsored the local football team",
        ],
        ["last quarter.", "this year.", "on Wall Street.", "despite the recession.", "again."],
    ),
}


_OPENINGS = ["", "", "Yesterday ", "According to the news, ", "Everyone says that ", "I heard "]


def _sentences(per_topic: int = 40, seed: int = 7) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for topic, (subjects, actions, endings) in _TOPICS.items():
        for _ in range(per_topic):
            # Shared openings and cross-topic actions keep the words from being a giveaway.
            opening, subject = rng.choice(_OPENINGS), rng.choice(subjects)
            if opening and subject != "I":
                subject = subject[0].lower() + subject[1:]
            text = f"{opening}{subject} {rng.choice(actions)} {rng.choice(endings)}"
            rows.append({"text": text, "topic": topic})
    rng.shuffle(rows)
    return pd.DataFrame(rows)


def _spec(**options: object) -> TrainingSpec:
    return TrainingSpec(
        target="topic",
        features=["text"],
        kinds={"text": ColumnKind.TEXT, "topic": ColumnKind.CATEGORICAL},
        time_budget_seconds=60,
        seed=3,
        options=options,
    )


def test_topics_are_learned_from_a_holdout() -> None:
    progress: list[tuple[int, int]] = []
    fitted = train_text_classifier(
        _sentences(), _spec(), lambda c, t, m=None: progress.append((c, t))
    )
    assert fitted.metrics["accuracy"] >= 0.85
    assert fitted.metrics["f1"] >= 0.85
    assert "roc_auc" not in fitted.metrics  # three classes
    assert fitted.estimator in {"logistic_regression", "linear_svc"}
    tried = {t.estimator for t in fitted.leaderboard}
    assert tried == {"logistic_regression_c10", "logistic_regression_c1", "linear_svc"}
    assert all(t.score is not None and t.error is None for t in fitted.leaderboard)
    assert progress[-1][0] == progress[-1][1]
    assert fitted.details["classes"] == ["cooking", "finance", "sports"]


def test_predictions_carry_probabilities_and_survive_pickling() -> None:
    fitted = train_text_classifier(_sentences(), _spec(estimator="logistic_regression_c10"))
    assert [t.estimator for t in fitted.leaderboard] == ["logistic_regression_c10"]
    unseen = pd.DataFrame(
        {
            "text": [
                "The goalkeeper scored a goal at the match",
                "Bake the bread and simmer the soup",
                "Inflation pushed the bank to raise rates",
            ]
        }
    )
    rows = fitted.model.predict_rows(unseen)
    assert [r["prediction"] for r in rows] == ["sports", "cooking", "finance"]
    for row in rows:
        assert set(row["probabilities"]) == {"cooking", "finance", "sports"}
        assert sum(row["probabilities"].values()) == pytest.approx(1.0)
    again = pickle.loads(pickle.dumps(fitted.model))
    assert again.predict_rows(unseen) == rows


def test_binary_labels_report_roc_auc_and_keep_int_labels() -> None:
    frame = _sentences()
    frame = frame[frame["topic"] != "finance"].assign(topic=lambda f: (f["topic"] == "sports") * 1)
    fitted = train_text_classifier(frame, _spec(estimator="linear_svc"))
    assert fitted.metrics["roc_auc"] >= 0.9
    row = fitted.model.predict_rows(pd.DataFrame({"text": ["The striker won the final"]}))[0]
    assert row["prediction"] == 1
    assert set(row["probabilities"]) == {"0", "1"}


def test_stemming_joins_word_forms() -> None:
    tokenize = StemmingTokenizer()
    assert tokenize("Running runs RUN") == ["run", "run", "run"]
    assert tokenize("The chef's knives, baked.") == ["the", "chef", "knive", "bake"]
    assert pickle.loads(pickle.dumps(tokenize))("cooking") == ["cook"]


def test_several_text_columns_are_joined() -> None:
    frame = _sentences()
    halves = frame["text"].str.split(" ", n=2, expand=True)
    frame = pd.DataFrame(
        {"head": halves[0] + " " + halves[1], "tail": halves[2], "topic": frame["topic"]}
    )
    spec = TrainingSpec(
        target="topic",
        features=[],
        kinds={"head": ColumnKind.TEXT, "tail": ColumnKind.TEXT, "topic": ColumnKind.CATEGORICAL},
        time_budget_seconds=60,
        options={"estimator": "logistic_regression_c10"},
    )
    fitted = train_text_classifier(frame, spec)
    assert fitted.details["text_columns"] == ["head", "tail"]
    assert fitted.metrics["accuracy"] >= 0.85
    with pytest.raises(DatasetError) as caught:
        fitted.model.predict_rows(frame[["head"]])
    assert caught.value.column == "tail"


def test_bad_input_names_the_column() -> None:
    frame = _sentences()
    with pytest.raises(DatasetError) as caught:
        train_text_classifier(frame.drop(columns="text"), _spec())
    assert caught.value.column == "text"
    with pytest.raises(DatasetError) as caught:
        train_text_classifier(frame.drop(columns="topic"), _spec())
    assert caught.value.column == "topic"
    with pytest.raises(DatasetError, match="single class") as caught:
        train_text_classifier(frame.assign(topic="sports"), _spec())
    assert caught.value.column == "topic"
    lonely = pd.concat([frame, pd.DataFrame({"text": ["A lone odd one"], "topic": ["weather"]})])
    with pytest.raises(DatasetError, match="'weather'") as caught:
        train_text_classifier(lonely, _spec())
    assert caught.value.column == "topic"
    with pytest.raises(DatasetError, match="too few") as caught:
        train_text_classifier(frame.groupby("topic").head(3), _spec())
    assert caught.value.column == "topic"
    with pytest.raises(DatasetError, match="no words") as caught:
        train_text_classifier(frame.assign(text="  ... !"), _spec())
    assert caught.value.column == "text"
    with pytest.raises(DatasetError, match="no text column"):
        train_text_classifier(frame, replace(_spec(), features=["x"]))


def test_unknown_estimator_and_metric_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown text estimator"):
        train_text_classifier(_sentences(), _spec(estimator="naive_bayes"))
    spec = replace(_spec(), metric="r2")
    with pytest.raises(ValueError, match="unknown metric"):
        train_text_classifier(_sentences(), spec)


def test_a_spent_budget_still_fits_one_model() -> None:
    spec = replace(_spec(), time_budget_seconds=0.0)
    fitted = train_text_classifier(_sentences(), spec)
    assert fitted.leaderboard[0].error is None
    assert all("budget" in (t.error or "") for t in fitted.leaderboard[1:])
    assert fitted.metrics["accuracy"] >= 0.85


def test_duplicate_index_and_empty_predictions() -> None:
    frame = _sentences()
    frame.index = [0] * len(frame)
    fitted = train_text_classifier(frame, _spec(estimator="logistic_regression_c10"))
    assert fitted.metrics["accuracy"] >= 0.85
    assert fitted.model.predict_rows(frame.iloc[:0]) == []
