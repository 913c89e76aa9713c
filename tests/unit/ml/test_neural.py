"""The PyTorch MLP estimators: quality in a real pipeline, seeding, early stopping, pickling."""

from __future__ import annotations

import pickle
import pickletools
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse
from sklearn.datasets import load_breast_cancer, load_diabetes, make_classification
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from aia_workers.ml.contracts.tables import ColumnKind
from aia_workers.ml.trainers.neural import MLPClassifier, MLPRegressor
from aia_workers.ml.trainers.tabular import build_pipeline


def _split(frame: pd.DataFrame, seed: int, *, stratify: bool) -> tuple[Any, ...]:
    x = frame.drop(columns="target")
    y = frame["target"]
    return tuple(
        train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y if stratify else None)
    )


def _kinds(frame: pd.DataFrame) -> dict[str, ColumnKind]:
    return {c: ColumnKind.NUMERIC for c in frame.columns if c != "target"}


def _fitted_cancer_pipeline(seed: int = 0, **params: Any) -> tuple[Pipeline, pd.DataFrame]:
    frame = load_breast_cancer(as_frame=True).frame
    x_train, x_test, y_train, _ = _split(frame, seed, stratify=True)
    pipeline = build_pipeline(_kinds(frame), MLPClassifier(random_state=seed, **params))
    return pipeline.fit(x_train, y_train), x_test


def test_breast_cancer_holdout_accuracy() -> None:
    frame = load_breast_cancer(as_frame=True).frame
    x_train, x_test, y_train, y_test = _split(frame, 0, stratify=True)
    pipeline = build_pipeline(_kinds(frame), MLPClassifier()).fit(x_train, y_train)
    assert pipeline.score(x_test, y_test) >= 0.93
    probabilities = pipeline.predict_proba(x_test)
    assert probabilities.shape == (len(x_test), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert list(pipeline.classes_) == [0, 1]


def test_diabetes_r2_over_seeds() -> None:
    # 442 noisy rows: one 20 % holdout swings R² by about ±0.1, so average three.
    frame = load_diabetes(as_frame=True).frame
    scores = []
    for seed in (0, 1, 2):
        x_train, x_test, y_train, y_test = _split(frame, seed, stratify=False)
        pipeline = build_pipeline(_kinds(frame), MLPRegressor(random_state=seed))
        scores.append(pipeline.fit(x_train, y_train).score(x_test, y_test))
    assert np.mean(scores) >= 0.3, scores


def test_same_seed_same_predictions_and_rng_left_alone() -> None:
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    first, x_test = _fitted_cancer_pipeline(seed=3, max_epochs=15, dropout=0.2)
    assert torch.equal(torch.rand(3), expected_draw)  # the caller's RNG stream is untouched
    assert torch.get_num_threads() == threads
    second, _ = _fitted_cancer_pipeline(seed=3, max_epochs=15, dropout=0.2)
    np.testing.assert_array_equal(first.predict_proba(x_test), second.predict_proba(x_test))
    other, _ = _fitted_cancer_pipeline(seed=4, max_epochs=15, dropout=0.2)
    assert not np.array_equal(first.predict_proba(x_test), other.predict_proba(x_test))


def test_early_stopping_keeps_the_best_epoch() -> None:
    x, y = make_classification(
        n_samples=600, n_features=8, n_informative=4, class_sep=2.0, random_state=0
    )
    model = MLPClassifier(max_epochs=500, patience=5).fit(x, y)
    assert model.n_epochs_ < 500
    assert model.n_epochs_ == model.best_epoch_ + 5
    assert model.score(x, y) >= 0.9


def test_no_validation_rows_trains_every_epoch() -> None:
    x, y = make_classification(n_samples=100, n_features=5, random_state=1)
    model = MLPClassifier(max_epochs=7, validation_fraction=0.0).fit(x, y)
    assert model.n_epochs_ == model.best_epoch_ == 7


def test_a_fit_trains_with_grad_mode_left_off_by_an_interrupted_one() -> None:
    # A budget's SIGALRM can land inside torch.no_grad() and skip its __exit__,
    # leaving the thread's grad mode off for every later fit in the process.
    x, y = make_classification(n_samples=100, n_features=5, random_state=1)
    previous = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        model = MLPClassifier(max_epochs=5, validation_fraction=0.0).fit(x, y)
        assert not torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(previous)
    assert model.n_epochs_ == 5
    assert model.score(x, y) >= 0.7


def test_sparse_input_matches_dense() -> None:
    x, y = make_classification(n_samples=200, n_features=6, random_state=2)
    x[x < 0] = 0.0
    params: dict[str, Any] = {"max_epochs": 10, "random_state": 5}
    dense = MLPRegressor(**params).fit(x, y.astype(float))
    sparse_fit = MLPRegressor(**params).fit(sparse.csr_matrix(x), y.astype(float))
    np.testing.assert_allclose(dense.predict(x), sparse_fit.predict(sparse.csr_matrix(x)))


def test_string_labels_come_back_as_labels() -> None:
    x, y = make_classification(
        n_samples=150, n_features=4, n_classes=3, n_informative=3, n_redundant=0, random_state=3
    )
    labels = np.array(["ant", "bee", "cat"])[y]
    model = MLPClassifier(max_epochs=20).fit(x, labels)
    assert set(model.predict(x)) <= {"ant", "bee", "cat"}
    assert list(model.classes_) == ["ant", "bee", "cat"]


def _pickled_names(data: bytes) -> set[str]:
    """Every string the pickle program pushes (module and class names among them)."""
    return {arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)}


def test_pickle_round_trip_loads_weights_only(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline, x_test = _fitted_cancer_pipeline(max_epochs=10)
    data = pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)
    names = _pickled_names(data)
    assert "aia_workers.ml.trainers.neural" in names
    assert not [n for n in names if n.startswith("torch")]  # no torch object is pickled

    real_load = torch.load
    calls: list[dict[str, Any]] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    restored = pickle.loads(data)
    assert calls == [{"weights_only": True, "map_location": "cpu"}]
    np.testing.assert_array_equal(restored.predict_proba(x_test), pipeline.predict_proba(x_test))
    assert restored.named_steps["model"].n_epochs_ == pipeline.named_steps["model"].n_epochs_


def test_regressor_pickle_round_trip() -> None:
    x, y = load_diabetes(return_X_y=True)
    model = MLPRegressor(max_epochs=5, hidden_layers=(16,)).fit(x, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hidden_layers": (8, 0)}, "hidden_layers"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"dropout": -0.1}, "dropout"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_parameters_are_refused(params: dict[str, Any], message: str) -> None:
    x, y = make_classification(n_samples=40, n_features=3, n_informative=2, n_redundant=0)
    with pytest.raises(ValueError, match=message):
        MLPClassifier(**params).fit(x, y)


def test_single_class_is_refused() -> None:
    with pytest.raises(ValueError, match="single class"):
        MLPClassifier().fit(np.zeros((10, 2)), np.ones(10))
