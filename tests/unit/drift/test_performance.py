"""Performance drift: the live metric is training's own, and "worse" follows the metric's way."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge

from aia_workers.drift.contracts.checks import PerformanceConfig
from aia_workers.drift.performance import compare_performance, score_labels
from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.contracts.tables import ColumnKind
from aia_workers.ml.trainers.automl.predictor import TabularPredictor
from aia_workers.ml.trainers.tabular import (
    TabularTask,
    build_pipeline,
    holdout_scores,
    prepare_split,
)

CONFIG = PerformanceConfig()


def _fitted(frame: pd.DataFrame, task: TabularTask):
    kinds = {c: ColumnKind.NUMERIC for c in frame.columns if c != "target"}
    split = prepare_split(
        frame, target="target", task=task, kinds=kinds, features=None, seed=0, test_size=0.3
    )
    estimator = LogisticRegression(max_iter=5000) if task == TabularTask.CLASSIFICATION else Ridge()
    pipeline = build_pipeline(split.kinds, estimator).fit(split.x_train, split.y_train)
    return pipeline, split


def _iris_named() -> pd.DataFrame:
    frame = load_iris(as_frame=True).frame
    names = np.array(load_iris().target_names)
    return frame.assign(target=names[frame["target"]])


@pytest.mark.parametrize(
    ("frame", "task"),
    [
        pytest.param(
            load_breast_cancer(as_frame=True).frame, TabularTask.CLASSIFICATION, id="binary"
        ),
        pytest.param(load_iris(as_frame=True).frame, TabularTask.CLASSIFICATION, id="multiclass"),
        pytest.param(_iris_named(), TabularTask.CLASSIFICATION, id="string-classes"),
        pytest.param(load_diabetes(as_frame=True).frame, TabularTask.REGRESSION, id="regression"),
    ],
)
def test_labels_fed_back_score_as_the_holdout_did(frame: pd.DataFrame, task: TabularTask) -> None:
    # The holdout's true labels sent back for its logged predictions give the very
    # figures training recorded: same metric, same definition.
    pipeline, split = _fitted(frame, task)
    recorded = holdout_scores(pipeline, task, split.x_test, split.y_test)
    served = TabularPredictor(pipeline, task, list(split.kinds)).predict_rows(split.x_test)
    # As stored: the outputs and labels went through JSON.
    outputs = json.loads(json.dumps(served))
    labels = json.loads(json.dumps(split.y_test.tolist()))
    assert len(recorded) >= 3
    for metric, value in recorded.items():
        live, count = score_labels(MLTask(task.value), metric, outputs, labels)
        assert count == len(labels)
        assert live == pytest.approx(value, abs=1e-12), metric
    if task == TabularTask.REGRESSION:
        live, _ = score_labels(MLTask.REGRESSION, "neg_mae", outputs, labels)
        assert live == pytest.approx(-recorded["mae"], abs=1e-12)


def test_roc_auc_is_not_scored_where_a_class_has_no_label() -> None:
    outputs = [{"prediction": 1, "probabilities": {"0": 0.2, "1": 0.8}}] * 5
    live, count = score_labels(MLTask.CLASSIFICATION, "roc_auc", outputs, [1] * 5)
    assert (live, count) == (None, 5)
    accuracy, _ = score_labels(MLTask.CLASSIFICATION, "accuracy", outputs, [1, 1, 1, 0, 0])
    assert accuracy == pytest.approx(0.6)


def test_unusable_pairs_are_left_out() -> None:
    outputs = [{"prediction": 1.0}, {"prediction": None}, {"prediction": 3.0}, {"prediction": 5.0}]
    live, count = score_labels(MLTask.REGRESSION, "mae", outputs, [2.0, 1.0, 3.0, 5.0])
    assert count == 3
    assert live == pytest.approx(1 / 3)


def test_a_fall_in_accuracy_past_max_drop_is_drift() -> None:
    fell = compare_performance("accuracy", 0.90, 0.80, 40, CONFIG)
    assert fell.drifted
    assert fell.drop == pytest.approx(0.10)
    assert fell.higher_is_better
    assert not fell.relative
    held = compare_performance("accuracy", 0.90, 0.87, 40, CONFIG)
    assert not held.drifted
    assert held.drop == pytest.approx(0.03)
    better = compare_performance("accuracy", 0.90, 0.95, 40, CONFIG)
    assert not better.drifted
    assert better.drop == pytest.approx(-0.05)


def test_errors_are_worse_when_they_grow() -> None:
    # rmse and mae: lower is better, and the drop is a share of the training error.
    grew = compare_performance("rmse", 10.0, 11.0, 40, CONFIG)
    assert grew.drifted
    assert grew.drop == pytest.approx(0.10)
    assert grew.relative
    assert not grew.higher_is_better
    assert not compare_performance("rmse", 10.0, 10.4, 40, CONFIG).drifted
    shrank = compare_performance("mae", 10.0, 5.0, 40, CONFIG)
    assert not shrank.drifted
    assert shrank.drop == pytest.approx(-0.5)
    # neg_mae is minus the error: higher is better, and a fall is relative too.
    assert compare_performance("neg_mae", -10.0, -11.0, 40, CONFIG).drifted
    assert not compare_performance("neg_mae", -10.0, -9.0, 40, CONFIG).drifted


def test_r2_falls_in_its_own_units() -> None:
    assert compare_performance("r2", 0.5, 0.4, 40, CONFIG).drifted
    assert not compare_performance("r2", 0.5, 0.46, 40, CONFIG).drifted


def test_max_drop_is_configurable() -> None:
    lenient = PerformanceConfig(max_drop=0.2)
    assert not compare_performance("accuracy", 0.90, 0.80, 40, lenient).drifted
    strict = PerformanceConfig(max_drop=0)
    assert compare_performance("accuracy", 0.90, 0.899, 40, strict).drifted


def test_an_error_over_a_perfect_training_score_is_drift_and_stores_as_json() -> None:
    result = compare_performance("mae", 0.0, 0.5, 40, CONFIG)
    assert result.drifted
    assert math.isinf(result.drop)
    stored = json.loads(json.dumps(result.as_json(), allow_nan=False))
    assert stored == {
        "metric": "mae",
        "training": 0.0,
        "live": 0.5,
        "labels": 40,
        "drop": None,
        "max_drop": 0.05,
        "drifted": True,
        "higher_is_better": False,
        "relative": True,
    }


def test_the_configuration_is_checked() -> None:
    assert (CONFIG.max_drop, CONFIG.min_labels) == (0.05, 30)
    with pytest.raises(ValidationError):
        PerformanceConfig(max_drop=-0.1)
    with pytest.raises(ValidationError):
        PerformanceConfig(min_labels=1)
    with pytest.raises(ValidationError):
        PerformanceConfig.model_validate({"max_drop": 0.1, "window": 3})
