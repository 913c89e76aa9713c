"""Predictions with a registered version: the cached model, the input typed, a sampled log."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from aia_workers.db.ml import PredictionLog
from aia_workers.errors import TaskFailure
from aia_workers.ml.artifacts import IntegrityError, ModelFile
from aia_workers.ml.contracts.payloads import PredictPayload
from aia_workers.ml.contracts.signatures import check_rows
from aia_workers.ml.contracts.tables import ColumnKind, DatasetError
from aia_workers.ml.registry import ModelRegistry
from aia_workers.ml.runtime import MLRuntime
from aia_workers.ml.trainers.frames import frame_from_rows

__all__ = ["predict"]


def predict(
    rt: MLRuntime, tenant: str, payload: PredictPayload, *, task_id: str | None
) -> dict[str, Any]:
    """Predict ``payload.rows`` with the version it names; log a sample of them."""
    with rt.sessions() as session:
        version = ModelRegistry(session, tenant).version(payload.model, payload.version)
    if version is None:
        raise TaskFailure(f"model {payload.model!r} has no version {payload.version}")
    try:
        check_rows(version.signature, payload.rows)
        model, cached = rt.models.get(
            ModelFile(tenant, version.artifact_key, version.artifact_sha256, version.artifact_mac)
        )
        kinds = {str(c["name"]): ColumnKind(c["kind"]) for c in version.signature}
        outputs = model.predict_rows(frame_from_rows(payload.rows, kinds))
    except (DatasetError, IntegrityError, ValueError) as exc:
        raise TaskFailure(str(exc)) from exc
    logged = _log(rt, tenant, payload, outputs, task_id)
    return {
        "model": payload.model,
        "version": payload.version,
        "predictions": outputs,
        # Parallel to predictions: the id to send ground truth for, null where unlogged.
        "prediction_ids": logged,
        "model_cache": "hit" if cached else "miss",
    }


def _log(
    rt: MLRuntime,
    tenant: str,
    payload: PredictPayload,
    outputs: list[dict[str, Any]],
    task_id: str | None,
) -> list[str | None]:
    """Log a sample of the rows; per output, the id of its log entry or None if not sampled."""
    rate = rt.settings.prediction_log_sample_rate
    keep = rt.settings.prediction_log_max_rows
    if rate <= 0 or keep <= 0:
        return [None] * len(outputs)
    now = datetime.now(UTC)
    ids: list[str | None] = []
    sampled: list[PredictionLog] = []
    for row, output in zip(payload.rows, outputs, strict=False):
        # Past ``keep`` rows the trim below would delete this batch's own rows (they
        # share one timestamp), leaving ids that name nothing.
        if len(sampled) >= keep or (rate < 1 and random.random() >= rate):
            ids.append(None)
            continue
        entry = PredictionLog(
            id=str(uuid.uuid4()),
            tenant_id=tenant,
            model_name=payload.model,
            version=payload.version,
            task_id=task_id,
            inputs=row,
            outputs=output,
            created_at=now,
        )
        ids.append(entry.id)
        sampled.append(entry)
    # An output with no row of its own (zip stops at the shorter) is not logged,
    # but still has its place in the list, which stays parallel to the outputs.
    ids += [None] * (len(outputs) - len(ids))
    with rt.sessions.begin() as session:
        ModelRegistry(session, tenant).log_predictions(sampled, keep=keep)
    return ids
