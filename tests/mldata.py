"""Small data sets for the ML tests, shipped with scikit-learn or made here, seeded."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes

_TOPICS = {
    "sports": (
        ["The striker", "Our goalkeeper", "The coach", "The home team", "The runner"],
        [
            "scored twice in the final minutes of the match",
            "trained hard before the championship game",
            "won the race after a fast sprint",
            "was injured during the second half",
            "celebrated the league title with the fans",
        ],
    ),
    "cooking": (
        ["The chef", "My grandmother", "This recipe", "The bakery", "Our kitchen"],
        [
            "roasted the vegetables with garlic and olive oil",
            "baked fresh bread with a crispy crust",
            "simmered the tomato sauce for two hours",
            "seasoned the soup with pepper and herbs",
            "whisked eggs and sugar for the cake batter",
        ],
    ),
    "finance": (
        ["The central bank", "Investors", "The company", "The stock market", "Analysts"],
        [
            "raised interest rates to fight inflation",
            "reported higher quarterly earnings and revenue",
            "sold shares after the price dropped",
            "expect the bond yields to climb next year",
            "cut the dividend because profits fell",
        ],
    ),
}


def to_csv(frame: pd.DataFrame) -> bytes:
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue().encode()


def breast_cancer() -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame


def diabetes() -> pd.DataFrame:
    return load_diabetes(as_frame=True).frame


def seasonal_series(periods: int = 120, seed: int = 0) -> pd.DataFrame:
    """Monthly: a trend, a 12-month season and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(periods)
    value = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1.5, periods)
    month = pd.date_range("2015-01-01", periods=periods, freq="MS").strftime("%Y-%m-%d")
    return pd.DataFrame({"month": month, "sales": value.round(3)})


def topic_texts(per_topic: int = 40, seed: int = 0) -> pd.DataFrame:
    """Short sentences about sports, cooking or finance, labelled by topic."""
    rng = np.random.default_rng(seed)
    rows = []
    for topic, (subjects, predicates) in _TOPICS.items():
        for _ in range(per_topic):
            subject = subjects[rng.integers(len(subjects))]
            predicate = predicates[rng.integers(len(predicates))]
            rows.append({"text": f"{subject} {predicate}.", "topic": topic})
    order = rng.permutation(len(rows))
    return pd.DataFrame([rows[i] for i in order])


def planted_outliers(inliers: int = 400, outliers: int = 12, seed: int = 0) -> pd.DataFrame:
    """Gaussian points in 4-D and a few far away; ``planted`` marks the far ones."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(0, 1, (inliers, 4))
    far = rng.normal(0, 1, (outliers, 4)) + rng.choice([-8.0, 8.0], (outliers, 4))
    frame = pd.DataFrame(np.vstack([normal, far]).round(4), columns=["a", "b", "c", "d"])
    frame["planted"] = [0] * inliers + [1] * outliers
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True)
