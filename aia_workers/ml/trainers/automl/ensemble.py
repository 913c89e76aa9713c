"""The search's final ensemble: an average of the best few trials, when it beats the best alone.

Members are chosen greedily, with repeats, on the trials' out-of-fold
predictions (Caruana et al., "Ensemble selection from libraries of models",
2004): each step adds the trial whose addition scores best, and the
ensemble is kept only if it scores better than the best trial by itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from aia_workers.ml.trainers.automl.metrics import METRICS, score_predictions
from aia_workers.ml.trainers.tabular import TabularTask

__all__ = ["ENSEMBLE_CANDIDATES", "AveragedModel", "select_members"]

# Candidates are the best few trials; more rarely helps and each costs a refit.
ENSEMBLE_CANDIDATES = 5
_STEPS = 10
# An ensemble must beat the best trial by this much to be worth its extra refits.
_MIN_GAIN = 1e-4


def select_members(
    task: TabularTask,
    metric: str,
    y: pd.Series,
    classes: Sequence[Any] | np.ndarray,
    predictions: Sequence[np.ndarray],
) -> dict[int, int]:
    """Indices into ``predictions`` (best trial first) → weights; ``{0: 1}`` for no ensemble.

    ``predictions`` are out-of-fold: class probabilities (columns in
    ``classes`` order) or regression predictions, one row per training row.
    """
    higher = METRICS[task][metric]
    sign = 1.0 if higher else -1.0
    pool = list(predictions[:ENSEMBLE_CANDIDATES])

    def utility(summed: np.ndarray, count: int) -> float:
        return sign * score_predictions(metric, task, y, summed / count, classes)

    chosen = [0]
    summed = pool[0].copy()
    alone = best = utility(summed, 1)
    for _ in range(_STEPS - 1):
        scores = [utility(summed + p, len(chosen) + 1) for p in pool]
        pick = int(np.argmax(scores))
        if scores[pick] <= best:
            break
        best = scores[pick]
        chosen.append(pick)
        summed = summed + pool[pick]
    if best < alone + _MIN_GAIN:
        return {0: 1}
    return dict(Counter(chosen))


class AveragedModel:
    """Fitted pipelines whose predictions (or class probabilities) are averaged, by weight."""

    def __init__(
        self, members: Sequence[Pipeline], weights: Sequence[int], task: TabularTask
    ) -> None:
        self.members = list(members)
        self.weights = np.asarray(weights, dtype=float) / float(sum(weights))
        self.task = TabularTask(task)
        if self.task == TabularTask.CLASSIFICATION:
            self.classes_ = self.members[0].classes_

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        if self.task == TabularTask.CLASSIFICATION:
            return np.asarray(self.classes_[np.argmax(self.predict_proba(x), axis=1)])
        return np.asarray(
            sum(w * m.predict(x) for w, m in zip(self.weights, self.members, strict=True))
        )

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(
            sum(w * m.predict_proba(x) for w, m in zip(self.weights, self.members, strict=True))
        )
