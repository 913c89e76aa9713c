"""Checks on columns, in plain Python: an experiment against its dataset, rows against a model.

The API runs these before it enqueues anything, so a wrong target or a
prediction row missing a column is a 422 at once, not a failed task later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.contracts.tables import (
    FALSE_VALUES,
    MISSING,
    TRUE_VALUES,
    ColumnKind,
    DatasetError,
)

__all__ = ["MIN_ROWS", "check_experiment", "check_rows", "default_features"]

# Fewer rows than this cannot be split into training, validation and holdout sets.
MIN_ROWS: Mapping[MLTask, int] = {
    MLTask.CLASSIFICATION: 20,
    MLTask.REGRESSION: 20,
    MLTask.TEXT_CLASSIFICATION: 20,
    MLTask.FORECASTING: 12,
    MLTask.SENTIMENT: 1,
    MLTask.ANOMALY_DETECTION: 10,
}

_TABULAR_KINDS = frozenset(
    {ColumnKind.NUMERIC, ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN, ColumnKind.DATETIME}
)


def default_features(
    task: MLTask, kinds: Mapping[str, ColumnKind], target: str | None
) -> list[str]:
    """The input columns a task uses when the experiment names none."""
    others = {c: k for c, k in kinds.items() if c != target}
    if task in (MLTask.TEXT_CLASSIFICATION, MLTask.SENTIMENT):
        texts = [c for c, k in others.items() if k == ColumnKind.TEXT]
        return texts[:1] if task == MLTask.SENTIMENT else texts
    if task == MLTask.FORECASTING:
        return [c for c, k in others.items() if k == ColumnKind.DATETIME][:1]
    return [c for c, k in others.items() if k in _TABULAR_KINDS]


def check_experiment(
    task: MLTask,
    columns: Sequence[Mapping[str, Any]],
    rows: int,
    target: str | None,
    features: Sequence[str] | None,
) -> list[str]:
    """The experiment's input columns; DatasetError naming the column if it cannot train.

    ``columns`` is the dataset's profile: name, kind, missing and distinct counts.
    """
    profile = {str(c["name"]): c for c in columns}
    kinds = {name: ColumnKind(c["kind"]) for name, c in profile.items()}
    if target is None and task.needs_target:
        raise DatasetError(f"a {task} experiment needs a target column", column="target")
    if target is not None:
        if target not in profile:
            known = ", ".join(profile)
            raise DatasetError(
                f"the dataset has no column {target!r} (its columns: {known})", column=target
            )
        column = profile[target]
        present = rows - int(column["missing"])
        if task in (MLTask.REGRESSION, MLTask.FORECASTING) and kinds[target] != ColumnKind.NUMERIC:
            raise DatasetError(
                f"the target {target!r} holds {kinds[target]} values; {task} needs numbers",
                column=target,
            )
        if task.needs_target and int(column["distinct"]) < 2:
            raise DatasetError(
                f"the target {target!r} has a single value; there is nothing to learn",
                column=target,
            )
        if present < MIN_ROWS[task]:
            raise DatasetError(
                f"the target {target!r} has {present} values; {task} needs at least "
                f"{MIN_ROWS[task]} to split for training and testing",
                column=target,
            )
    elif rows < MIN_ROWS[task]:
        raise DatasetError(f"{rows} rows are too few; {task} needs at least {MIN_ROWS[task]}")
    if features:
        for name in features:
            if name not in profile:
                raise DatasetError(f"the dataset has no column {name!r}", column=name)
            if name == target:
                raise DatasetError(
                    f"{name!r} is the target; it cannot also be an input", column=name
                )
        chosen = list(features)
    else:
        chosen = default_features(task, kinds, target)
    if not chosen and task != MLTask.FORECASTING:
        wanted = (
            "a text column"
            if task in (MLTask.SENTIMENT, MLTask.TEXT_CLASSIFICATION)
            else ("a numeric, categorical, boolean or date column")
        )
        raise DatasetError(f"a {task} experiment needs {wanted} besides the target")
    return chosen


def check_rows(signature: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> None:
    """DatasetError naming the row and column of the first value the model cannot take."""
    for number, row in enumerate(rows, start=1):
        for column in signature:
            name, kind = str(column["name"]), ColumnKind(column["kind"])
            if name not in row:
                raise DatasetError(
                    f"row {number} has no {name!r}; the model takes "
                    + ", ".join(repr(str(c["name"])) for c in signature),
                    column=name,
                    row=number,
                )
            problem = _wrong_type(kind, row[name])
            if problem:
                raise DatasetError(
                    f"row {number}, column {name!r}: {problem}", column=name, row=number
                )


def _wrong_type(kind: ColumnKind, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in MISSING):
        return None
    if kind == ColumnKind.NUMERIC:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return f"{value!r} is not a number"
        try:
            float(value)
        except ValueError:
            return f"{value!r} is not a number"
    elif kind == ColumnKind.BOOLEAN:
        if isinstance(value, bool):
            return None
        if str(value).strip().lower() not in TRUE_VALUES | FALSE_VALUES:
            return f"{value!r} is not true or false"
    elif isinstance(value, dict | list):
        return f"expected a {kind} value, got a JSON {type(value).__name__}"
    return None
