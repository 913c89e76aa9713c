"""Agent output as strict JSON: numpy values to Python, NaN and infinities to null."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["finite"]


def finite(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as JSON types and non-finite floats as None.

    Strict JSON has no NaN or Infinity, and a run's output is stored and sent as
    JSON, so a statistic that is undefined (the skew of one value) becomes null.
    """
    if isinstance(value, Mapping):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [finite(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return finite(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)
