"""The columns that hold secrets encrypted at rest, and their re-encryption under the first key.

``aia secrets rotate`` calls ``reseal_all``: after a new key is put first in
``AIA_ENCRYPTION_KEYS`` it re-encrypts every stored secret under it, and it
encrypts the rows written before secrets were encrypted at all. Processes keep
running meanwhile, as every key still decrypts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from aia_workers.db.identity import User
from aia_workers.db.webhooks import WebhookEndpoint
from aia_workers.secretbox import SecretBox, SecretBoxError

__all__ = ["SEALED_COLUMNS", "ResealReport", "reseal_all"]

# Every column whose value is a SecretBox token (or, before encryption, plaintext).
SEALED_COLUMNS: tuple[InstrumentedAttribute[Any], ...] = (
    User.mfa_secret,
    WebhookEndpoint.secret,
    WebhookEndpoint.previous_secret,
)


@dataclass
class ResealReport:
    """Per column ("table.column"): rows re-encrypted, and rows already under the first key."""

    resealed: dict[str, int] = field(default_factory=dict)
    current: dict[str, int] = field(default_factory=dict)
    # Rows another process rewrote between the read and the write: written
    # under that process's first key, so a second pass settles them.
    changed_meanwhile: int = 0
    # Row ids whose value no key in AIA_ENCRYPTION_KEYS decrypts.
    unreadable: list[str] = field(default_factory=list)


def reseal_all(
    sessions: sessionmaker[Session], box: SecretBox, *, batch: int = 500
) -> ResealReport:
    """Bring every stored secret under ``box``'s first key, ``batch`` rows per transaction."""
    report = ResealReport()
    for column in SEALED_COLUMNS:
        _reseal_column(sessions, box, column, batch, report)
    return report


def _reseal_column(
    sessions: sessionmaker[Session],
    box: SecretBox,
    column: InstrumentedAttribute[Any],
    batch: int,
    report: ResealReport,
) -> None:
    model = column.class_
    name = f"{model.__tablename__}.{column.key}"
    report.resealed[name] = report.current[name] = 0
    after = ""
    while True:
        with sessions() as session:
            rows = session.execute(
                select(model.id, column)
                .where(column.is_not(None), model.id > after)
                .order_by(model.id)
                .limit(batch)
            ).all()
        if not rows:
            return
        after = rows[-1][0]
        with sessions.begin() as session:
            for ident, stored in rows:
                if box.is_current(stored):
                    report.current[name] += 1
                    continue
                try:
                    fresh = box.reseal(stored)
                except SecretBoxError:
                    report.unreadable.append(f"{name}:{ident}")
                    continue
                # Written only over the value just read: a concurrent change wins.
                result = session.execute(
                    update(model)
                    .where(model.id == ident, column == stored)
                    .values({column.key: fresh})
                )
                changed: Any = result.rowcount  # type: ignore[attr-defined]
                if int(changed) == 1:
                    report.resealed[name] += 1
                else:
                    report.changed_meanwhile += 1
