"""The pieces of a retrain that need no database: its payload, the split, the score, the verdict."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.metrics import f1_score, mean_absolute_error, r2_score, roc_auc_score

from aia_workers.backbone.catalog import get_task_type
from aia_workers.ml.contracts.payloads import MLTask, RetrainPayload
from aia_workers.ml.contracts.retraining import (
    check_retrainable,
    decide,
    missing_columns,
    retrain_metric,
)
from aia_workers.ml.contracts.tables import DatasetError
from aia_workers.ml.retraining import split_holdout
from aia_workers.ml.scoring import served_score


def test_the_payload_has_its_defaults_and_bounds() -> None:
    payload = RetrainPayload(model="churn")
    assert (payload.alias, payload.margin, payload.holdout_fraction) == ("production", 0.0, 0.2)
    assert (payload.dataset_id, payload.seed, payload.trigger, payload.report_id) == (
        None,
        None,
        "manual",
        None,
    )
    for bad in (
        {"margin": -0.1},
        {"holdout_fraction": 0.01},
        {"holdout_fraction": 0.6},
        {"trigger": "whim"},
        {"surprise": 1},
    ):
        with pytest.raises(ValidationError):
            RetrainPayload.model_validate({"model": "churn", **bad})
    entry = get_task_type("ml.retrain")
    assert (entry.queue, entry.permission) == ("ml", "ml:train")
    assert entry.module == "aia_workers.ml.tasks"
    assert entry.time_limit_seconds == get_task_type("ml.train").time_limit_seconds


@pytest.mark.parametrize(
    ("metric", "champion", "challenger", "margin", "expected"),
    [
        ("accuracy", 0.80, 0.90, 0.0, "promoted"),
        ("accuracy", 0.90, 0.90, 0.0, "kept"),  # strictly better, even with no margin
        ("accuracy", 0.90, 0.95, 0.05, "promoted"),  # by exactly the margin
        ("accuracy", 0.90, 0.94, 0.05, "kept"),
        ("rmse", 2.0, 1.0, 0.5, "promoted"),  # lower is better
        ("mae", 1.0, 2.0, 0.0, "kept"),
        ("r2", 0.5, math.nan, 0.0, "kept"),
        ("r2", math.nan, 0.9, 0.0, "kept"),
        ("r2", None, math.nan, 5.0, "no_champion"),
    ],
)
def test_the_challenger_must_be_better_by_the_margin(
    metric: str, champion: float | None, challenger: float, margin: float, expected: str
) -> None:
    assert decide(metric, champion, challenger, margin) == expected


def test_kinds_without_a_holdout_score_are_refused() -> None:
    for task in (MLTask.CLASSIFICATION, MLTask.REGRESSION, MLTask.TEXT_CLASSIFICATION):
        check_retrainable(task)
    for task in (MLTask.FORECASTING, MLTask.SENTIMENT, MLTask.ANOMALY_DETECTION):
        with pytest.raises(DatasetError, match=f"a {task} model cannot be retrained"):
            check_retrainable(task)
    assert retrain_metric(MLTask.REGRESSION, None) == "r2"
    assert retrain_metric(MLTask.TEXT_CLASSIFICATION, None) == "f1"
    assert retrain_metric(MLTask.CLASSIFICATION, "roc_auc") == "roc_auc"
    columns = [{"name": "a"}, {"name": "y"}]
    assert missing_columns(columns, "label", ["a", "b"]) == ["label", "b"]
    assert missing_columns(columns, "y", ["a"]) == []


def test_the_holdout_is_seeded_and_stratified() -> None:
    labels = np.array(["a"] * 80 + ["b"] * 20 + [None] * 5, dtype=object)
    frame = pd.DataFrame({"x": np.arange(len(labels)), "y": labels})
    training, holdout = split_holdout(frame, MLTask.CLASSIFICATION, "y", 0.25, seed=3)
    assert (len(training), len(holdout)) == (75, 25)  # unlabelled rows are in neither
    assert holdout["y"].value_counts().to_dict() == {"a": 20, "b": 5}
    assert set(training.index).isdisjoint(holdout.index)
    again = split_holdout(frame, MLTask.CLASSIFICATION, "y", 0.25, seed=3)[1]
    assert list(again.index) == list(holdout.index)
    with pytest.raises(DatasetError, match="both parts need at least 5"):
        split_holdout(frame.head(12), MLTask.REGRESSION, "x", 0.2, seed=0)


def test_scores_from_served_outputs_equal_scikit_learns() -> None:
    rng = np.random.default_rng(0)
    truth = pd.Series(rng.integers(0, 3, size=60))
    p = rng.dirichlet(np.ones(3), size=60)
    outputs = [
        {"prediction": int(np.argmax(row)), "probabilities": {str(k): row[k] for k in range(3)}}
        for row in p
    ]
    predicted = np.argmax(p, axis=1)
    assert served_score("accuracy", truth, outputs) == pytest.approx(
        float(np.mean(predicted == truth))
    )
    assert served_score("f1", truth, outputs) == pytest.approx(
        f1_score(truth, predicted, average="macro")
    )
    assert served_score("roc_auc", truth, outputs) == pytest.approx(
        roc_auc_score(truth, p, multi_class="ovr")
    )
    binary = pd.Series(["no", "yes", "yes", "no", "yes"])
    scores = [0.2, 0.9, 0.4, 0.5, 0.7]
    served = [{"prediction": "x", "probabilities": {"no": 1 - s, "yes": s}} for s in scores]
    assert served_score("roc_auc", binary, served) == pytest.approx(
        roc_auc_score(binary == "yes", scores)
    )
    with pytest.raises(DatasetError, match=r"classes the model does not know \(maybe\)"):
        served_score("roc_auc", pd.Series(["no", "maybe"]), served[:2])

    y = pd.Series(rng.normal(size=40))
    guess = y + rng.normal(scale=0.3, size=40)
    rows = [{"prediction": float(g)} for g in guess]
    assert served_score("r2", y, rows) == pytest.approx(r2_score(y, guess))
    assert served_score("mae", y, rows) == pytest.approx(mean_absolute_error(y, guess))
    assert served_score("neg_mae", y, rows) == pytest.approx(-mean_absolute_error(y, guess))
    assert served_score("rmse", y, rows) == pytest.approx(np.sqrt(np.mean((y - guess) ** 2)))
