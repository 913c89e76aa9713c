"""What every trainer takes and returns, whatever kind of model it fits.

A trainer is a plain function ``train(frame, spec, report) -> Fitted``. The
``ml`` task stores ``Fitted.model`` as the version's artifact and serves
predictions with ``Fitted.model.predict_rows``; the rest of ``Fitted`` goes to
the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import pandas as pd

from aia_workers.backbone.progress import ProgressReporter, discard_progress
from aia_workers.ml.contracts.tables import ColumnKind

__all__ = ["Fitted", "Predictor", "Trainer", "TrainingSpec", "Trial", "json_safe"]


class Predictor(Protocol):
    """A fitted model as AIA serves it: picklable, one output object per input row."""

    def predict_rows(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """One JSON-safe dict per row of ``frame`` (the signature's columns)."""
        ...


@dataclass(frozen=True, slots=True)
class TrainingSpec:
    """What to fit: the experiment's choices and the run's options."""

    target: str | None
    features: list[str]
    kinds: Mapping[str, ColumnKind]
    time_budget_seconds: float
    metric: str | None = None
    seed: int = 0
    # Per-kind knobs, e.g. estimator, max_trials, contamination, horizon, season_length.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trial:
    """One candidate tried during a search: what, how well, how long."""

    estimator: str
    params: dict[str, Any]
    score: float | None
    fit_seconds: float
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))  # type: ignore[no-any-return]


@dataclass(slots=True)
class Fitted:
    """A trained model and everything the registry keeps about it."""

    model: Predictor
    estimator: str
    params: dict[str, Any]
    metrics: dict[str, float]
    fit_seconds: float
    leaderboard: list[Trial] = field(default_factory=list)
    # Anything else worth showing with the version (a backtest, a forecast).
    details: dict[str, Any] = field(default_factory=dict)


class Trainer(Protocol):
    def __call__(
        self, frame: pd.DataFrame, spec: TrainingSpec, report: ProgressReporter = discard_progress
    ) -> Fitted: ...


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars, arrays, tuples and odd keys turned into JSON types."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())
    if isinstance(value, float) and value != value:
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)
