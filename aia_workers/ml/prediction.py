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
    _log(rt, tenant, payload, outputs, task_id)
    return {
        "model": payload.model,
        "version": payload.version,
        "predictions": outputs,
        "model_cache": "hit" if cached else "miss",
    }


def _log(
    rt: MLRuntime,
    tenant: str,
    payload: PredictPayload,
    outputs: list[dict[str, Any]],
    task_id: str | None,
) -> None:
    rate = rt.settings.prediction_log_sample_rate
    keep = rt.settings.prediction_log_max_rows
    if rate <= 0 or keep <= 0:
        return
    now = datetime.now(UTC)
    sampled = [
        PredictionLog(
            id=str(uuid.uuid4()),
            tenant_id=tenant,
            model_name=payload.model,
            version=payload.version,
            task_id=task_id,
            inputs=row,
            outputs=output,
            created_at=now,
        )
        for row, output in zip(payload.rows, outputs, strict=False)
        if rate >= 1 or random.random() < rate
    ]
    with rt.sessions.begin() as session:
        ModelRegistry(session, tenant).log_predictions(sampled, keep=keep)
