"""The current data a drift check compares with a version's reference, on the reference's scales.

Either the version's prediction log over a time range (what it was asked, and
what it answered), or an uploaded dataset (its rows, and the model's
predictions on them). Each feature goes through ``profile.profiled_values``
with the kind it was profiled with, and outputs through ``prediction_frame``,
as the reference did, so both sides are compared on the same terms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from aia_workers.db.ml import Dataset, ModelVersion, PredictionLog
from aia_workers.drift.errors import DriftInputError
from aia_workers.drift.profile import ReferenceProfile, prediction_frame, profiled_values
from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.contracts.tables import ColumnKind, DatasetError
from aia_workers.ml.trainers.frames import frame_from_csv, frame_from_rows

__all__ = ["PREDICTED_ROWS", "CurrentWindow", "from_dataset", "from_prediction_log"]

# A dataset's predictions are taken on at most this many of its rows (a seeded
# random subset), as the reference's are: enough for every test, and a
# million-row upload does not cost a million predictions.
PREDICTED_ROWS = 100_000

PredictRows = Callable[[pd.DataFrame], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class CurrentWindow:
    """Features and outputs of the same current rows, each column on its reference scale.

    ``predictions`` is None when there are no outputs to compare (a forecaster's
    reference has none). ``window`` describes where the rows came from, for the report.
    """

    features: pd.DataFrame
    predictions: pd.DataFrame | None
    window: dict[str, Any]

    @property
    def rows(self) -> int:
        return len(self.features)


def from_prediction_log(
    session: Session,
    tenant: str,
    version: ModelVersion,
    profile: ReferenceProfile,
    *,
    since: datetime | None,
    until: datetime | None,
) -> CurrentWindow:
    """The logged inputs and outputs of ``version`` with ``since <= created_at < until``."""
    window: dict[str, Any] = {
        "kind": "predictions",
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }
    if MLTask(version.task) == MLTask.FORECASTING:
        raise DriftInputError(
            f"model {version.model_name!r} is a forecaster: its reference is its target "
            "series, which its prediction log does not hold; check it against a dataset of "
            "recent observations (dataset_id)"
        )
    log = PredictionLog
    stmt = select(log.inputs, log.outputs).where(
        log.tenant_id == tenant,
        log.model_name == version.model_name,
        log.version == version.version,
    )
    if since is not None:
        stmt = stmt.where(log.created_at >= since)
    if until is not None:
        stmt = stmt.where(log.created_at < until)
    logged = session.execute(stmt.order_by(log.created_at, log.id)).all()
    inputs = [row.inputs for row in logged]
    outputs = [row.outputs for row in logged]
    kinds = _feature_kinds(profile)
    try:
        typed = frame_from_rows(inputs, kinds)
    except DatasetError as exc:
        raise DriftInputError(f"the logged inputs cannot be checked: {exc}") from exc
    return CurrentWindow(
        features=_on_scale(typed, kinds),
        predictions=_outputs(version, profile, outputs),
        window={**window, "rows": len(logged)},
    )


def from_dataset(
    dataset: Dataset,
    data: bytes,
    version: ModelVersion,
    profile: ReferenceProfile,
    predict: PredictRows | None,
    *,
    seed: int = 0,
) -> CurrentWindow:
    """``dataset``'s rows (its bytes ``data``) and ``predict``'s outputs on them.

    Columns are typed as the version was trained on them, not as the upload's
    own profile guessed, so a number stays a number on both sides.
    """
    kinds = _feature_kinds(profile)
    absent = [name for name in kinds if name not in {c["name"] for c in dataset.columns}]
    if absent:
        raise DriftInputError(
            f"dataset {dataset.id} has no column {', '.join(map(repr, absent))}, which "
            f"version {version.version} of {version.model_name!r} was trained on"
        )
    column_kinds = {str(c["name"]): ColumnKind(c["kind"]) for c in dataset.columns}
    try:
        typed = frame_from_csv(data, {**column_kinds, **kinds})
    except DatasetError as exc:
        raise DriftInputError(f"dataset {dataset.id} cannot be checked: {exc}") from exc
    outputs: pd.DataFrame | None = None
    signature = {str(c["name"]): ColumnKind(c["kind"]) for c in version.signature}
    if predict is not None and signature and profile.predictions:
        rows = np.arange(len(typed))
        if len(rows) > PREDICTED_ROWS:
            rows = np.sort(np.random.default_rng(seed).permutation(len(rows))[:PREDICTED_ROWS])
        try:
            predicted = predict(typed.iloc[rows][list(signature)].reset_index(drop=True))
        except (DatasetError, ValueError) as exc:
            raise DriftInputError(
                f"the model could not predict dataset {dataset.id}'s rows: {exc}"
            ) from exc
        outputs = _outputs(version, profile, predicted)
    return CurrentWindow(
        features=_on_scale(typed, kinds),
        predictions=outputs,
        window={"kind": "dataset", "dataset_id": dataset.id, "rows": len(typed)},
    )


def _feature_kinds(profile: ReferenceProfile) -> dict[str, ColumnKind]:
    return {name: ColumnKind(p.kind) for name, p in profile.features.items()}


def _on_scale(typed: pd.DataFrame, kinds: Mapping[str, ColumnKind]) -> pd.DataFrame:
    return pd.DataFrame(
        {name: profiled_values(typed[name], kind) for name, kind in kinds.items()},
        index=typed.index,
    ).reset_index(drop=True)


def _outputs(
    version: ModelVersion, profile: ReferenceProfile, outputs: Sequence[Mapping[str, Any]]
) -> pd.DataFrame | None:
    if not profile.predictions:
        return None
    frame, _ = prediction_frame(MLTask(version.task), outputs)
    # The reference's columns only, in its order; one it has that no current output
    # holds (a class never predicted now) is all missing, which the check reports.
    columns = {
        name: frame[name] if name in frame else pd.Series([None] * len(frame), dtype=object)
        for name in profile.predictions
    }
    return pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))
