"""Stored CSV bytes to a typed pandas frame, by the kinds the upload's profile found."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from aia_workers.ml.contracts.tables import (
    FALSE_VALUES,
    MISSING,
    TRUE_VALUES,
    ColumnKind,
    DatasetError,
    cell_text,
    read_csv,
)

__all__ = ["classification_labels", "frame_from_csv", "frame_from_rows"]


def frame_from_csv(data: bytes, kinds: Mapping[str, ColumnKind]) -> pd.DataFrame:
    """The table in ``data`` with every column converted to its kind's type.

    Numeric columns are float64 with NaN for missing; booleans, categories and
    dates are strings with None for missing; text is a string ("" if missing).
    """
    # The same parser that accepted the upload, so both see the same cells.
    table = read_csv(data)
    return _typed(pd.DataFrame(table.rows, columns=table.columns, dtype=object), kinds)


def frame_from_rows(
    rows: Sequence[Mapping[str, Any]], kinds: Mapping[str, ColumnKind]
) -> pd.DataFrame:
    """JSON rows (as sent for a prediction) typed like the training data."""
    columns = list(kinds)
    cells = [[cell_text(row.get(c)) for c in columns] for row in rows]
    return _typed(pd.DataFrame(cells, columns=columns, dtype=object), kinds)


def classification_labels(labels: pd.Series) -> pd.Series:
    """Class labels as ints when they are all whole numbers, else as strings."""
    numbers = pd.to_numeric(labels, errors="coerce")
    if numbers.notna().all() and bool((numbers == np.floor(numbers)).all()):
        return numbers.astype(np.int64)
    return labels.astype(str)


def _typed(raw: pd.DataFrame, kinds: Mapping[str, ColumnKind]) -> pd.DataFrame:
    out: dict[str, pd.Series] = {}
    for column in raw.columns:
        values = raw[column].astype(str).str.strip()
        missing = values.str.lower().isin(MISSING)
        kind = kinds.get(column, ColumnKind.TEXT)
        if kind == ColumnKind.NUMERIC:
            numbers = pd.to_numeric(values.where(~missing), errors="coerce")
            bad = numbers.isna() & ~missing
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DatasetError(
                    f"column {column!r} holds {values.iloc[row]!r} in row {row + 1}, "
                    "which is not a number",
                    column=column,
                    row=row + 1,
                )
            out[column] = numbers.astype(float)
        elif kind == ColumnKind.BOOLEAN:
            lowered = values.str.lower()
            out[column] = lowered.map(_boolean).where(~missing, None)
        elif kind == ColumnKind.TEXT:
            out[column] = values.where(~missing, "")
        else:
            out[column] = values.where(~missing, None)
    return pd.DataFrame(out, index=raw.index)


def _boolean(value: str) -> str | None:
    if value in TRUE_VALUES:
        return "true"
    if value in FALSE_VALUES:
        return "false"
    return None
