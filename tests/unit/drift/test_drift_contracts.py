"""Pure pieces of a drift check: its payload, the policy's decision, the latest-verdict hash."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from aia_workers.drift.contracts.payloads import DriftCheckPayload, RetrainOn, RetrainTrigger
from aia_workers.drift.latest import LatestVerdict, read_latest
from aia_workers.drift.policies import Policy, retrain_decision


def test_a_check_names_one_version_and_one_window() -> None:
    payload = DriftCheckPayload(model="churn")
    assert (payload.version, payload.alias, payload.dataset_id) == (None, None, None)
    assert payload.config.drift_share == 0.5
    with pytest.raises(ValidationError, match="a version or an alias"):
        DriftCheckPayload(model="churn", version=1, alias="production")
    with pytest.raises(ValidationError, match="not both"):
        DriftCheckPayload.model_validate(
            {"model": "churn", "dataset_id": "d", "since": "2026-01-01T00:00:00Z"}
        )
    with pytest.raises(ValidationError, match="time zone"):
        DriftCheckPayload.model_validate({"model": "churn", "since": "2026-01-01T00:00:00"})
    with pytest.raises(ValidationError, match="before until"):
        DriftCheckPayload.model_validate(
            {"model": "churn", "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
        )
    with pytest.raises(ValidationError):
        DriftCheckPayload.model_validate({"model": "churn", "surprise": 1})


@pytest.mark.parametrize(
    ("retrain_on", "drifted", "performance", "expected"),
    [
        (RetrainOn.NEVER, True, {"drifted": True}, None),
        (RetrainOn.DATASET_DRIFT, True, None, RetrainTrigger.DRIFT),
        (RetrainOn.DATASET_DRIFT, False, {"drifted": True}, None),
        (RetrainOn.PERFORMANCE_DROP, True, None, None),
        (RetrainOn.PERFORMANCE_DROP, False, {"drifted": False}, None),
        (RetrainOn.PERFORMANCE_DROP, False, {"drifted": True}, RetrainTrigger.PERFORMANCE),
    ],
)
def test_the_policy_retrains_on_what_it_names_only(
    retrain_on: RetrainOn,
    drifted: bool,
    performance: dict[str, bool] | None,
    expected: RetrainTrigger | None,
) -> None:
    policy = Policy(retrain_on=retrain_on)
    assert retrain_decision(policy, drifted=drifted, performance=performance) == expected


def test_the_default_policy_never_retrains() -> None:
    assert Policy().retrain_on is RetrainOn.NEVER
    assert Policy().as_dict()["updated_at"] is None


def test_latest_verdicts_are_read_back_and_bad_entries_skipped() -> None:
    verdict = LatestVerdict("t1", "churn", 3, "r1", True, 0.75, 1_700_000_000.5)
    good = json.dumps(
        {
            "tenant": "t1",
            "model": "churn",
            "version": 3,
            "report_id": "r1",
            "drifted": True,
            "drifted_share": 0.75,
            "at": 1_700_000_000.5,
        }
    ).encode()
    entries = {b'["t1","churn"]': good, b'["t1","x"]': b"not json", b'["t2","y"]': b"{}"}
    assert read_latest(entries) == [verdict]
