"""Fits that grow a model in stages, so the run's deadline can stop them with a usable model.

Forests add trees and histogram gradient boosting adds rounds under
``warm_start``; between stages the fit looks at the deadline
(``budget.past_deadline``) and, once past it, keeps what it has grown. A forest
grown so is the forest a single fit would have built, tree for tree: scikit-learn
draws each added tree's seed as if all had been asked for at once. The PyTorch
MLP looks at the deadline between epochs itself. Anything else is one fit.
"""

from __future__ import annotations

import math
from typing import Any

from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.pipeline import Pipeline

from aia_workers.ml.budget import deadline, past_deadline

__all__ = ["staged_fit"]

# Each model grows in about this many stages: few enough that the stages cost
# little, many enough that a deadline stops it within a tenth of its fit. The
# first stage is a tenth of a stage, so a deadline already near still leaves a
# (small) model rather than a fit that runs on past it.
_STAGES = 10
# The parameter that says how big each growable model is.
_SIZE = (
    ((RandomForestClassifier, RandomForestRegressor, IsolationForest), "n_estimators"),
    ((HistGradientBoostingClassifier, HistGradientBoostingRegressor), "max_iter"),
)


def staged_fit(pipeline: Pipeline, x: Any, y: Any = None) -> dict[str, Any] | None:
    """Fit ``pipeline``, its last step in stages when it can grow and a deadline is set.

    Returns what the deadline cut short, ``{"parameter", "reached", "asked"}``,
    or None when the model is as big as asked.
    """
    model = pipeline.steps[-1][1]
    size = next((name for kinds, name in _SIZE if isinstance(model, kinds)), None)
    if size is None or deadline() is None:
        pipeline.fit(x, y)
        return _epochs_cut(model)
    # The steps before the model share their estimators with ``pipeline``: fitted here, once.
    prepared = pipeline[:-1].fit_transform(x, y) if len(pipeline) > 1 else x
    asked = int(model.get_params()[size])
    step = max(1, math.ceil(asked / _STAGES))
    grown = 0
    model.set_params(warm_start=True)
    try:
        while grown < asked:
            grown = min(asked, _next_size(grown, step))
            model.set_params(**{size: grown})
            model.fit(prepared, y)
            if getattr(model, "n_iter_", grown) < grown:
                grown = asked  # boosting stopped early by its own validation score
                break
            if grown < asked and past_deadline():
                break
    finally:
        # Stored models say how they were fitted; warm_start was only the means.
        model.set_params(warm_start=False)
    if grown >= asked:
        model.set_params(**{size: asked})
        return None
    return {"parameter": size, "reached": grown, "asked": asked}


def _next_size(grown: int, step: int) -> int:
    """The size after ``grown``: a tenth of a stage first, then whole stages."""
    return (grown // step + 1) * step if grown else math.ceil(step / _STAGES)


def _epochs_cut(model: Any) -> dict[str, Any] | None:
    if not getattr(model, "stopped_at_deadline_", False):
        return None
    return {"parameter": "max_epochs", "reached": model.n_epochs_, "asked": model.max_epochs}
