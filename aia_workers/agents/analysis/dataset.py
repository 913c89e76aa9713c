"""A stored dataset as a typed frame, loaded the way ml training loads it."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from aia_workers.agents.contracts import AgentEnvironment, AgentInputError
from aia_workers.ml.contracts.tables import ColumnKind, DatasetError
from aia_workers.ml.datasets import DatasetRepository
from aia_workers.ml.trainers.frames import frame_from_csv

__all__ = ["Table", "load_table"]


class Table:
    """A dataset's rows (typed as ``frame_from_csv`` types them) and each column's kind."""

    def __init__(self, dataset_id: str, frame: pd.DataFrame, kinds: dict[str, ColumnKind]) -> None:
        self.dataset_id = dataset_id
        self.frame = frame
        self.kinds = kinds

    def numeric(self, columns: Sequence[str] | None = None) -> list[str]:
        """The numeric columns among ``columns`` (by default all), in the data's order."""
        names = self.frame.columns if columns is None else columns
        return [c for c in names if self.kinds[c] == ColumnKind.NUMERIC]


def load_table(
    env: AgentEnvironment, tenant: str, dataset_id: str, columns: Sequence[str] | None = None
) -> Table:
    """The tenant's dataset ``dataset_id``, restricted to ``columns`` when given.

    AgentInputError when there is no such dataset (for this tenant), a named
    column is not in it, or its stored bytes no longer parse as they did at upload.
    """
    with env.sessions() as session:
        dataset = DatasetRepository(session, tenant).get(dataset_id)
        if dataset is None:
            raise AgentInputError(
                f"there is no dataset {dataset_id}; upload one (POST /v1/ml/datasets) "
                "or name one listed by GET /v1/ml/datasets"
            )
        kinds = {str(c["name"]): ColumnKind(c["kind"]) for c in dataset.columns}
        key, digest = dataset.artifact_key, dataset.sha256
    if columns:
        unknown = [c for c in columns if c not in kinds]
        if unknown:
            raise AgentInputError(
                f"the dataset {dataset_id} has no column {', '.join(map(repr, unknown))}; "
                f"its columns are {', '.join(kinds)}"
            )
    try:
        frame = frame_from_csv(env.artifacts.get(key, digest), kinds)
    except DatasetError as exc:
        raise AgentInputError(f"the dataset {dataset_id} cannot be read: {exc}") from None
    if columns:
        # Keep the data's order, once each, whatever order the input named them in.
        wanted = set(columns)
        frame = frame[[c for c in frame.columns if c in wanted]]
        kinds = {c: kinds[c] for c in frame.columns}
    return Table(dataset_id, frame.reset_index(drop=True), kinds)
