"""Celery adapters for drift: ``drift.check`` (a catalog type) and ``drift.sweep`` (AIA's own).

A check's body: run the domain's check, keep its verdict for the gauges, and
submit the retrain its model's policy asks for. Submitting is done here, not
in the domain, because it needs the Celery app; it is keyed by the report, so
a check delivered twice retrains once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
import sqlalchemy.exc
from celery import Task
from pydantic import ValidationError

from aia_workers.backbone.announcements import to_webhooks
from aia_workers.backbone.catalog import get_task_type
from aia_workers.backbone.publisher import get_publisher
from aia_workers.backbone.submission import BrokerRefusedError, TenantBusyError, submit_task
from aia_workers.backbone.tasking import aia_task
from aia_workers.celery import app
from aia_workers.drift.contracts.payloads import DriftCheckPayload
from aia_workers.drift.latest import LatestVerdict, record_latest
from aia_workers.drift.reports import ReportRepository
from aia_workers.drift.run import CheckOutcome, check_drift
from aia_workers.drift.sweep import sweep_targets
from aia_workers.errors import TransientError, UnknownTaskTypeError
from aia_workers.ml.runtime import runtime

__all__ = ["SWEEP", "check", "sweep"]

log = logging.getLogger(__name__)

SWEEP = "drift.sweep"
_RETRAIN = "ml.retrain"


@contextmanager
def _outages_are_transient() -> Iterator[None]:
    # The database or Redis being away is worth waiting for; bad input is not.
    try:
        yield
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
        raise TransientError(f"the database is unreachable: {exc}") from exc
    except redis.ConnectionError as exc:
        raise TransientError(f"Redis is unreachable: {exc}") from exc


@aia_task(get_task_type("drift.check"))
def check(self: Task, payload: dict[str, Any], tenant: str) -> dict[str, Any]:
    rt = runtime()
    with _outages_are_transient():
        outcome = check_drift(
            rt,
            tenant,
            DriftCheckPayload.model_validate(payload),
            task_id=self.request.id,
            events=to_webhooks,
        )
        _keep_verdict(outcome)
        retrain = _retrain(outcome)
    return {**outcome.result(), "retrain": retrain}


def _keep_verdict(outcome: CheckOutcome) -> None:
    verdict = LatestVerdict(
        tenant=outcome.tenant,
        model=outcome.model,
        version=outcome.version,
        report_id=outcome.report_id,
        drifted=outcome.drifted,
        drifted_share=outcome.drifted_share,
        at=outcome.created_at.timestamp(),
    )
    try:
        record_latest(get_publisher().client, verdict)
    except redis.RedisError:
        # The report is stored; the gauge catches up with the model's next check.
        log.warning("could not keep the drift verdict of report %s", outcome.report_id)


def _retrain(outcome: CheckOutcome) -> dict[str, Any] | None:
    """Submit the retrain the outcome asks for and record it on the report; the decision."""
    body = outcome.retrain_payload()
    if body is None:
        return outcome.retrain
    rt = runtime()
    try:
        sent = submit_task(
            get_publisher().client,
            app,
            rt.settings,
            tenant=outcome.tenant,
            type_name=_RETRAIN,
            payload=body,
            idempotency=f"retrain:{outcome.report_id}",
        )
        fields: dict[str, Any] = {"task_id": sent.task_id, "error": None}
    except (TenantBusyError, BrokerRefusedError) as exc:
        # The report stands; the retry submits again under the same key.
        raise TransientError(f"the retrain could not be submitted yet: {exc}") from exc
    except (UnknownTaskTypeError, ValidationError) as exc:
        # A deployment without ml.retrain (or with another payload): the check
        # itself succeeded, and the report says why nothing was retrained.
        log.error("report %s: %s was not submitted: %s", outcome.report_id, _RETRAIN, exc)
        fields = {"error": f"{_RETRAIN} could not be submitted: {exc}"}
    with rt.sessions.begin() as session:
        return dict(
            ReportRepository(session, outcome.tenant).record_retrain(outcome.report_id, **fields)
            or {}
        )


@app.task(
    name=SWEEP,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    time_limit=300,
    soft_time_limit=280,
)
def sweep(self: Task) -> dict[str, Any]:
    """Submit a ``drift.check`` of every model with a ``production`` alias, for its tenant.

    Keyed by this sweep's task id and the model, so a sweep delivered twice
    submits each check once. A tenant at its in-flight limit is skipped this time.
    """
    rt = runtime()
    with rt.sessions() as session:
        targets = sweep_targets(session)
    submitted, skipped = [], []
    for target in targets:
        try:
            sent = submit_task(
                get_publisher().client,
                app,
                rt.settings,
                tenant=target.tenant,
                type_name="drift.check",
                payload=target.payload(),
                idempotency=f"drift.sweep:{self.request.id}:{target.model}",
            )
            submitted.append(
                {"tenant": target.tenant, "model": target.model, "task_id": sent.task_id}
            )
        except (TenantBusyError, BrokerRefusedError) as exc:
            log.warning("drift sweep: %s/%s not checked: %s", target.tenant, target.model, exc)
            skipped.append({"tenant": target.tenant, "model": target.model, "reason": str(exc)})
    log.info(
        "drift sweep %s: %d checks submitted, %d skipped",
        self.request.id,
        len(submitted),
        len(skipped),
    )
    return {"submitted": submitted, "skipped": skipped}
