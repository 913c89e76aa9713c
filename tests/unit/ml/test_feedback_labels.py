"""Fed-back labels are checked against the model's kind and the classes it predicts."""

from __future__ import annotations

import math

import pytest

from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.feedback import check_label

INT_CLASSES = {"prediction": 1, "probabilities": {"0": 0.3, "1": 0.7}}
STR_CLASSES = {"prediction": "spam", "probabilities": {"ham": 0.4, "spam": 0.6}}


def test_a_regression_label_is_a_finite_number() -> None:
    assert check_label(MLTask.REGRESSION, 3) == 3.0
    assert check_label(MLTask.REGRESSION, 2.5, {"prediction": 2.0}) == 2.5
    for bad in ("3", True, None, [1], {"value": 1}, math.inf, math.nan):
        with pytest.raises(ValueError, match=r"number|null"):
            check_label(MLTask.REGRESSION, bad)


def test_a_class_label_has_the_kind_of_the_classes() -> None:
    assert check_label(MLTask.CLASSIFICATION, 0, INT_CLASSES) == 0
    # A whole float is the whole number JSON sent; booleans were 0 and 1 in training.
    assert check_label(MLTask.CLASSIFICATION, 1.0, INT_CLASSES) == 1
    assert check_label(MLTask.CLASSIFICATION, True, INT_CLASSES) == 1
    # A class the model never saw is still a true label: the model got it wrong.
    assert check_label(MLTask.CLASSIFICATION, 7, INT_CLASSES) == 7
    assert check_label(MLTask.TEXT_CLASSIFICATION, "ham", STR_CLASSES) == "ham"
    with pytest.raises(ValueError, match="whole numbers"):
        check_label(MLTask.CLASSIFICATION, "1", INT_CLASSES)
    with pytest.raises(ValueError, match="whole numbers"):
        check_label(MLTask.CLASSIFICATION, 0.5, INT_CLASSES)
    with pytest.raises(ValueError, match="strings"):
        check_label(MLTask.CLASSIFICATION, 1, STR_CLASSES)


def test_without_the_prediction_only_what_no_class_can_be_is_refused() -> None:
    assert check_label(MLTask.CLASSIFICATION, "a") == "a"
    assert check_label(MLTask.CLASSIFICATION, 2.0) == 2
    for bad in (None, 0.5, [1], {"a": 1}):
        with pytest.raises(ValueError, match=r"class label|null"):
            check_label(MLTask.CLASSIFICATION, bad)


@pytest.mark.parametrize("task", [MLTask.FORECASTING, MLTask.SENTIMENT, MLTask.ANOMALY_DETECTION])
def test_kinds_without_a_comparable_label_take_none(task: MLTask) -> None:
    with pytest.raises(ValueError, match="no feedback"):
        check_label(task, 1)
