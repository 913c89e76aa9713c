"""A PyTorch multilayer perceptron as scikit-learn estimators, for tabular pipelines.

``MLPClassifier`` and ``MLPRegressor`` take the float matrix a
``ColumnTransformer`` produces (dense or scipy sparse), so they drop into
``tabular.build_pipeline`` like any scikit-learn estimator. Training is
seeded and stops early on a held-out share of the training rows.

Pickling never pickles torch objects: the weights travel as ``torch.save``
bytes and load back with ``weights_only=True`` (a project rule), so unpickling
a model cannot run code hidden in its tensors.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

# torch's optimizers import torch._dynamo (about 2 s) when the first one is built;
# importing it here keeps that one-off cost out of the first fit, where it would
# distort the timings a time-budgeted search relies on.
import torch._dynamo
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_array, check_is_fitted
from torch import nn

from aia_workers.ml.budget import past_deadline

__all__ = ["MLPClassifier", "MLPRegressor"]

# Validation loss must fall by more than this (nats for cross-entropy, squared
# standard deviations of y for regression) to count as an improvement; smaller
# gains are noise that would keep training for no benefit.
_MIN_IMPROVEMENT = 1e-4
# Rows per forward pass when predicting or scoring, to bound memory on big inputs.
_PREDICT_CHUNK = 8192
# Batches between looks at the run's deadline within an epoch (a look costs a clock read).
_DEADLINE_EVERY = 32

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _network(layer_sizes: Sequence[int], dropout: float) -> nn.Sequential:
    """Linear → ReLU → Dropout per hidden layer, then a linear output layer."""
    layers: list[nn.Module] = []
    for width_in, width_out in itertools.pairwise(layer_sizes[:-1]):
        # Dropout is always present (p may be 0) so state-dict keys never depend on it.
        layers += [nn.Linear(width_in, width_out), nn.ReLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(layer_sizes[-2], layer_sizes[-1]))
    return nn.Sequential(*layers)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run on one intra-op thread, then give the process back its own setting.

    A tabular MLP's batches are tiny matrices: on two cores a second thread made
    breast-cancer training about four times slower through synchronisation alone.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _as_matrix(x: Any) -> np.ndarray:
    """``x`` as a dense float32 matrix; scipy sparse input is densified."""
    checked = check_array(x, accept_sparse=["csr", "csc", "coo"], dtype=np.float32)
    if hasattr(checked, "toarray"):
        checked = checked.toarray()
    return np.ascontiguousarray(checked, dtype=np.float32)


class _TorchMLP(BaseEstimator):  # type: ignore[misc]
    """What both MLPs share: parameters, the training loop, prediction and pickling.

    Parameters: ``hidden_layers`` (units per hidden layer), ``learning_rate``
    (AdamW step size), ``weight_decay`` (AdamW's decoupled L2 factor per step),
    ``batch_size`` (rows per step), ``max_epochs`` (passes over the training
    rows), ``patience`` (epochs without validation-loss improvement before
    stopping), ``validation_fraction`` (share of rows held out for early
    stopping; 0 trains all ``max_epochs``), ``dropout`` (probability a hidden
    unit is zeroed while training), ``random_state`` (seeds weights, dropout,
    shuffling and the split), ``device`` (a torch device; None picks CUDA when
    available). Fitted: ``n_epochs_`` run and ``best_epoch_``, whose weights
    are kept; ``stopped_at_deadline_`` when the run's deadline
    (``budget.fit_deadline``) ended training before ``max_epochs`` or early stopping did.
    """

    def __init__(
        self,
        hidden_layers: tuple[int, ...] = (64, 32),
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 64,
        max_epochs: int = 200,
        patience: int = 10,
        validation_fraction: float = 0.1,
        dropout: float = 0.0,
        random_state: int = 0,
        device: str | None = None,
    ) -> None:
        self.hidden_layers = hidden_layers
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.dropout = dropout
        self.random_state = random_state
        self.device = device

    def _check_params(self) -> tuple[int, ...]:
        hidden = tuple(int(h) for h in self.hidden_layers)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden_layers must be positive widths, not {self.hidden_layers!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, not {self.learning_rate!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, not {self.weight_decay!r}")
        for name in ("batch_size", "max_epochs", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in [0, 1), not {self.validation_fraction!r}"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout!r}")
        return hidden

    def _split(self, n: int, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation row indices (validation empty when too few rows)."""
        rows = np.arange(n)
        n_val = math.ceil(n * self.validation_fraction)
        if n_val < 1 or n - n_val < 2:
            return rows, rows[:0]
        stratify = None
        if labels is not None:
            counts = np.unique(labels, return_counts=True)[1]
            # Stratify only when every class can appear on both sides of the split.
            if counts.min() >= 2 and min(n_val, n - n_val) >= len(counts):
                stratify = labels
        train, val = train_test_split(
            rows, test_size=n_val, random_state=self.random_state, stratify=stratify
        )
        return np.sort(train), np.sort(val)

    def _train(
        self, x: np.ndarray, y: torch.Tensor, n_outputs: int, loss: Loss, labels: np.ndarray | None
    ) -> None:
        hidden = self._check_params()
        if len(x) < 2:
            raise ValueError(f"an MLP needs at least 2 training rows, not {len(x)}")
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        train, val = self._split(len(x), labels)
        inputs = torch.from_numpy(x).to(device)
        y = y.to(device)
        sizes = (x.shape[1], *hidden, n_outputs)
        forked = [device.index or 0] if device.type == "cuda" else []
        # Seed inside a forked RNG: initial weights and dropout masks repeat for a
        # random_state, and the caller's global torch RNG is left as it was.
        # Grad mode is set here, not inherited: a budget's SIGALRM landing inside
        # another fit's torch.no_grad() can leave this thread's grad mode off.
        with torch.random.fork_rng(devices=forked), _one_thread(), torch.enable_grad():
            torch.manual_seed(self.random_state)
            module = _network(sizes, float(self.dropout)).to(device)
            order = torch.Generator().manual_seed(self.random_state)
            epochs, best_epoch, stopped = self._epochs(module, inputs, y, train, val, loss, order)
        module.eval()
        self.module_ = module
        self.layer_sizes_ = sizes
        self.device_ = str(device)
        self.n_features_in_ = x.shape[1]
        self.n_epochs_ = epochs
        self.best_epoch_ = best_epoch
        self.stopped_at_deadline_ = stopped

    def _epochs(
        self,
        module: nn.Sequential,
        inputs: torch.Tensor,
        y: torch.Tensor,
        train: np.ndarray,
        val: np.ndarray,
        loss: Loss,
        order: torch.Generator,
    ) -> tuple[int, int, bool]:
        """Train ``module`` in place: (epochs run, epoch whose weights it keeps, deadline hit).

        The run's deadline stops training between batches (after one batch at
        least), keeping the best weights of a whole epoch, or the weights so far
        when no epoch was scored.
        """
        optimizer = torch.optim.AdamW(
            module.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        train_rows = torch.from_numpy(train).to(inputs.device)
        val_rows = torch.from_numpy(val).to(inputs.device)
        batch = int(self.batch_size)
        best_loss, best_epoch, best_state, waited = math.inf, 0, None, 0
        epoch, stopped = 0, False
        for epoch in range(1, int(self.max_epochs) + 1):
            module.train()
            shuffled = train_rows[torch.randperm(len(train_rows), generator=order)]
            for step, start in enumerate(range(0, len(shuffled), batch)):
                if step % _DEADLINE_EVERY == _DEADLINE_EVERY - 1 and past_deadline():
                    stopped = True
                    break
                rows = shuffled[start : start + batch]
                optimizer.zero_grad(set_to_none=True)
                loss(module(inputs[rows]), y[rows]).backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            if stopped:
                epoch -= 1  # counted in whole epochs; a cut one is not scored either
                break
            if len(val_rows):
                current = self._mean_loss(module, inputs[val_rows], y[val_rows], loss)
                if current < best_loss - _MIN_IMPROVEMENT:
                    best_loss, best_epoch, waited = current, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                else:
                    waited += 1
                    if waited >= int(self.patience):
                        break
            if epoch < int(self.max_epochs) and past_deadline():
                stopped = True
                break
        if best_state is None:
            return epoch, epoch, stopped
        module.load_state_dict(best_state)
        return epoch, best_epoch, stopped

    @staticmethod
    def _mean_loss(module: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Loss) -> float:
        module.eval()
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(x), _PREDICT_CHUNK):
                chunk = slice(start, start + _PREDICT_CHUNK)
                total += float(loss(module(x[chunk]), y[chunk])) * len(y[chunk])
        return total / len(x)

    def _outputs(self, x: Any) -> np.ndarray:
        """The network's raw outputs (logits or standardized values) for ``x``."""
        check_is_fitted(self, "module_")
        matrix = _as_matrix(x)
        if matrix.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {matrix.shape[1]} features; the model was fitted with {self.n_features_in_}"
            )
        device = torch.device(self.device_)
        parts = []
        self.module_.eval()
        with torch.no_grad():
            for start in range(0, len(matrix), _PREDICT_CHUNK):
                chunk = torch.from_numpy(matrix[start : start + _PREDICT_CHUNK]).to(device)
                parts.append(self.module_(chunk).cpu().numpy().astype(np.float64))
        if not parts:
            return np.empty((0, self.layer_sizes_[-1]))
        return np.concatenate(parts)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        module = state.pop("module_", None)
        if module is not None:
            buffer = io.BytesIO()
            torch.save({k: v.cpu() for k, v in module.state_dict().items()}, buffer)
            state["_weights"] = buffer.getvalue()
            # Served from a pickle, the model runs wherever it is loaded: the CPU.
            state["device_"] = "cpu"
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        weights = state.pop("_weights", None)
        super().__setstate__(state)
        if weights is not None:
            module = _network(self.layer_sizes_, float(self.dropout))
            tensors = torch.load(io.BytesIO(weights), weights_only=True, map_location="cpu")
            module.load_state_dict(tensors)
            module.eval()
            self.module_ = module


class MLPClassifier(ClassifierMixin, _TorchMLP):  # type: ignore[misc]
    """A softmax MLP trained with cross-entropy; ``predict_proba`` gives class probabilities."""

    def fit(self, x: Any, y: Any) -> MLPClassifier:
        matrix = _as_matrix(x)
        target = np.asarray(y)
        if target.ndim != 1 or len(target) != len(matrix):
            raise ValueError(
                f"y must be one label per row of X ({len(matrix)}), not {target.shape}"
            )
        classes, codes = np.unique(target, return_inverse=True)
        if len(classes) < 2:
            raise ValueError("y has a single class; a classifier needs at least two")
        self.classes_ = classes
        self._train(
            matrix,
            torch.from_numpy(codes.astype(np.int64)),
            len(classes),
            nn.CrossEntropyLoss(),
            codes,
        )
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        """Per-row class probabilities, columns in the order of ``classes_``."""
        logits = torch.from_numpy(self._outputs(x))
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, x: Any) -> np.ndarray:
        labels: np.ndarray = self.classes_[np.argmax(self._outputs(x), axis=1)]
        return labels


class MLPRegressor(RegressorMixin, _TorchMLP):  # type: ignore[misc]
    """An MLP trained with mean squared error on a standardized target."""

    def fit(self, x: Any, y: Any) -> MLPRegressor:
        matrix = _as_matrix(x)
        target = np.asarray(y, dtype=np.float64)
        if target.ndim == 2 and target.shape[1] == 1:
            target = target.ravel()
        if target.ndim != 1 or len(target) != len(matrix):
            raise ValueError(
                f"y must be one value per row of X ({len(matrix)}), not {target.shape}"
            )
        if not np.isfinite(target).all():
            raise ValueError("y holds NaN or infinite values")
        # Standardized so one learning rate suits targets of any unit and scale.
        self.y_mean_ = float(target.mean())
        self.y_scale_ = float(target.std()) or 1.0
        scaled = ((target - self.y_mean_) / self.y_scale_).astype(np.float32)
        self._train(matrix, torch.from_numpy(scaled).unsqueeze(1), 1, nn.MSELoss(), None)
        return self

    def predict(self, x: Any) -> np.ndarray:
        """Predictions in the target's own units."""
        return self._outputs(x)[:, 0] * self.y_scale_ + self.y_mean_
