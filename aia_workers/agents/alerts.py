"""Each monitoring rule's last state, and the ``alert.fired`` event of each change of it.

The state and the event are written in the caller's transaction, so an
alert is announced exactly when its change commits: a run that fails before
the commit announces nothing and its retry finds the old state; a run
delivered again after it finds the new one and announces nothing. Two runs of
one agent at once take the rule's row in turn (a row lock on PostgreSQL, the
write lock on SQLite), so the second sees what the first decided.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aia_workers.agents.builtin.monitoring import RuleState, Verdict
from aia_workers.db.agents import MonitoringRuleState

if TYPE_CHECKING:
    from aia_workers.ml.registry import ModelEvents

__all__ = ["ALERT_EVENT", "Recorded", "record_verdicts", "rule_states"]

ALERT_EVENT = "alert.fired"


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording a run's verdicts found and did.

    ``previous`` is each rule's state before this run (``ok`` for a rule seen
    for the first time); ``changed`` maps each rule that changed to the state
    announced: ``firing`` or ``resolved``.
    """

    previous: Mapping[str, str]
    changed: Mapping[str, str]


def record_verdicts(
    session: Session,
    *,
    tenant: str,
    agent_id: str,
    run_id: str | None,
    verdicts: Sequence[Verdict],
    events: ModelEvents,
    now: datetime,
    prune: bool = True,
) -> Recorded:
    """Store each verdict's state and announce every change, in ``session``'s transaction.

    A ``no_data`` verdict leaves its rule's state as it was. With ``prune``,
    the states of rules the agent no longer has are forgotten (no event).
    """
    previous: dict[str, str] = {}
    changed: dict[str, str] = {}
    # Rows are taken in name order so that two runs never wait on each other crosswise.
    for verdict in sorted(verdicts, key=lambda v: v.rule.name):
        name = verdict.rule.name
        row = _locked_row(session, tenant, agent_id, name, now)
        previous[name] = row.state
        if verdict.state is RuleState.NO_DATA:
            continue
        row.evaluated_at = now
        row.value = verdict.value
        if verdict.state.value == row.state:
            continue
        row.state = verdict.state.value
        row.transitions += 1
        row.changed_at = now
        announced = "firing" if verdict.state is RuleState.FIRING else "resolved"
        changed[name] = announced
        events(
            session,
            tenant,
            ALERT_EVENT,
            _payload(verdict, announced, agent_id, run_id, now),
            dedupe_key=_dedupe_key(tenant, agent_id, name, row.transitions, now),
        )
    if prune:
        s = MonitoringRuleState
        session.execute(
            delete(s).where(
                s.tenant_id == tenant,
                s.agent_id == agent_id,
                s.rule.not_in([v.rule.name for v in verdicts]),
            )
        )
    return Recorded(previous, changed)


def rule_states(session: Session, tenant: str, agent_id: str) -> dict[str, MonitoringRuleState]:
    """An agent's recorded rule states by rule name."""
    s = MonitoringRuleState
    rows = session.scalars(select(s).where(s.tenant_id == tenant, s.agent_id == agent_id))
    return {row.rule: row for row in rows}


def _locked_row(
    session: Session, tenant: str, agent_id: str, rule: str, now: datetime
) -> MonitoringRuleState:
    # Inserted if absent, then read under a row lock: a second run inserting the
    # same rule at once waits for the first's commit instead of failing.
    table = cast(Table, MonitoringRuleState.__table__)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(table)
        .values(
            tenant_id=tenant,
            agent_id=agent_id,
            rule=rule,
            state=RuleState.OK.value,
            value=None,
            transitions=0,
            changed_at=now,
            evaluated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[table.c.tenant_id, table.c.agent_id, table.c.rule])
    )
    s = MonitoringRuleState
    stmt = (
        select(s)
        .where(s.tenant_id == tenant, s.agent_id == agent_id, s.rule == rule)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).one()


def _payload(
    verdict: Verdict, state: str, agent_id: str, run_id: str | None, now: datetime
) -> dict[str, Any]:
    rule = verdict.rule
    return {
        "alert": f"{'Firing' if state == 'firing' else 'Resolved'}: {rule.describe(verdict.value)}",
        "state": state,
        "rule": rule.name,
        "signal": str(rule.signal),
        "value": verdict.value,
        "op": str(rule.op),
        "threshold": rule.threshold,
        "agent_id": agent_id,
        "run_id": run_id,
        "queue": None if rule.queue is None else str(rule.queue),
        "task_type": rule.task_type,
        "window_seconds": rule.window,
        "samples": verdict.samples,
        "detail": dict(verdict.detail),
        "at": now.isoformat(),
    }


def _dedupe_key(tenant: str, agent_id: str, rule: str, transitions: int, now: datetime) -> str:
    # One per change: the count alone would repeat after a rule is removed and added
    # again, and the outbox would then take a new alert for an old one.
    raw = "\x1f".join((tenant, agent_id, rule, str(transitions), now.isoformat()))
    return f"{ALERT_EVENT}:{hashlib.sha256(raw.encode()).hexdigest()[:40]}"
