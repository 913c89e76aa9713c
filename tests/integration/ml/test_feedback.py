"""Feedback on SQLite and PostgreSQL: labels stored per tenant, checked, overwritten, kept."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.backbone.announcements import to_webhooks
from aia_workers.db.migrate import upgrade
from aia_workers.db.ml import PredictionLog
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.ml.contracts.payloads import MLTask
from aia_workers.ml.feedback import Feedback, LabelError, record_feedback
from aia_workers.ml.registry import ModelRegistry
from aia_workers.settings import Settings

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    settings = Settings(database_url=database_url, data_home=tmp_path)
    upgrade(settings)
    engine: Engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


def _logged(
    sessions: sessionmaker[Session],
    count: int,
    *,
    tenant: str = "t1",
    model: str = "churn",
    first: int = 0,
    keep: int = 1000,
) -> list[str]:
    entries = [
        PredictionLog(
            id=str(uuid.uuid4()),
            tenant_id=tenant,
            model_name=model,
            version=1,
            inputs={"x": first + i},
            outputs={"prediction": 1, "probabilities": {"0": 0.2, "1": 0.8}},
            created_at=START + timedelta(seconds=first + i),
        )
        for i in range(count)
    ]
    with sessions.begin() as session:
        ModelRegistry(session, tenant, to_webhooks).log_predictions(entries, keep=keep)
    return [e.id for e in entries]


def _feedback(
    sessions: sessionmaker[Session],
    items: list[Feedback],
    *,
    tenant: str = "t1",
    keep: int = 1000,
    now: datetime = NOW,
):
    with sessions.begin() as session:
        return record_feedback(
            session, tenant, "churn", MLTask.CLASSIFICATION, items, keep=keep, now=now
        )


def _labels(sessions: sessionmaker[Session]) -> dict[str, tuple[object, datetime | None]]:
    with sessions() as session:
        rows = session.execute(
            select(PredictionLog.id, PredictionLog.label, PredictionLog.labelled_at)
        ).all()
    return {row.id: (row.label, row.labelled_at) for row in rows}


def test_labels_are_stored_and_a_second_label_overwrites(sessions: sessionmaker[Session]) -> None:
    a, b, c = _logged(sessions, 3)
    outcome = _feedback(sessions, [Feedback(a, 0), Feedback(b, 1.0)])
    assert (outcome.labelled, outcome.unknown) == (2, [])
    labels = _labels(sessions)
    assert labels[a] == (0, NOW)
    assert labels[b] == (1, NOW)
    assert labels[c] == (None, None)

    later = NOW + timedelta(hours=1)
    # An id given twice: the last label counts, and it is one prediction labelled.
    again = _feedback(sessions, [Feedback(a, 0), Feedback(a, 1)], now=later)
    assert (again.labelled, again.unknown) == (1, [])
    assert _labels(sessions)[a] == (1, later)


def test_ids_of_other_tenants_and_models_are_unknown(sessions: sessionmaker[Session]) -> None:
    [mine] = _logged(sessions, 1)
    [theirs] = _logged(sessions, 1, tenant="t2")
    [other_model] = _logged(sessions, 1, model="fraud")
    missing = str(uuid.uuid4())
    outcome = _feedback(
        sessions,
        [
            Feedback(theirs, 1),
            Feedback(mine, 1),
            Feedback(other_model, 1),
            Feedback(missing, 0),
        ],
    )
    assert outcome.labelled == 1
    assert outcome.unknown == [theirs, other_model, missing]
    labels = _labels(sessions)
    assert labels[theirs] == (None, None)
    assert labels[other_model] == (None, None)


def test_a_bad_label_names_its_item_and_stores_nothing(sessions: sessionmaker[Session]) -> None:
    a, b = _logged(sessions, 2)
    with pytest.raises(LabelError) as caught:
        _feedback(sessions, [Feedback(a, 1), Feedback(b, "yes"), Feedback(a, None)])
    assert [index for index, _ in caught.value.items] == [1, 2]
    assert "whole numbers" in caught.value.items[0][1]
    assert str(caught.value).startswith("item 1:")
    assert _labels(sessions)[a] == (None, None)


def test_models_without_labels_take_no_feedback(sessions: sessionmaker[Session]) -> None:
    [a] = _logged(sessions, 1)
    with sessions.begin() as session, pytest.raises(LabelError, match="forecasting model"):
        record_feedback(
            session, "t1", "churn", MLTask.FORECASTING, [Feedback(a, 1)], keep=10, now=NOW
        )


def test_labelled_predictions_outlive_new_traffic_and_are_bounded(
    sessions: sessionmaker[Session],
) -> None:
    old = _logged(sessions, 6, keep=5)
    assert len(_labels(sessions)) == 5
    survivors = [i for i in old if i in _labels(sessions)]
    _feedback(sessions, [Feedback(i, 1) for i in survivors[:3]], keep=5)
    # New predictions push out unlabelled ones only.
    _logged(sessions, 5, first=100, keep=5)
    labels = _labels(sessions)
    assert all(labels[i] == (1, NOW) for i in survivors[:3])
    assert sum(label is None for label, _ in labels.values()) == 5
    # Labelled ones past their own bound go, the oldest first.
    outcome = _feedback(sessions, [Feedback(i, 0) for i in survivors[:3]], keep=2)
    assert outcome.labelled == 3
    labels = _labels(sessions)
    labelled = sorted(i for i, (label, _) in labels.items() if label is not None)
    assert labelled == sorted(survivors[1:3])
