"""The analysis agent on a dataset stored as an upload stores it (PostgreSQL, artifact store),
and the content agent writing its report: planted trend, season, coefficient and outliers found.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from aia_workers.agents.builtin.analysis import AnalysisAgent, AnalysisConfig, AnalysisInput
from aia_workers.agents.builtin.content import ContentAgent, ContentConfig, ContentInput
from aia_workers.agents.contracts import AgentEnvironment, AgentInputError, RunCancelled
from aia_workers.db.migrate import upgrade
from aia_workers.db.ml import Dataset
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.ml.artifacts import LocalArtifactStore
from aia_workers.ml.contracts.ingest import profile_csv
from aia_workers.ml.datasets import DatasetRepository
from aia_workers.settings import Settings
from tests.agentruns import RecordingContext, no_events

pytestmark = pytest.mark.integration

TENANT = "t1"
SLOPE, PERIOD, COEFFICIENT = 0.5, 12, 3.0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[AgentEnvironment]:
    settings = Settings(
        database_url=postgres_url,
        data_home=tmp_path_factory.mktemp("agents-analysis"),
        artifact_key="a" * 48,
    )
    upgrade(settings)
    engine = make_engine(settings)
    client = redis.Redis.from_url(settings.redis_url)
    yield AgentEnvironment(
        settings=settings,
        sessions=make_sessionmaker(engine),
        artifacts=LocalArtifactStore(settings.artifact_root),
        redis=client,
        events=no_events,
    )
    client.close()
    engine.dispose()


def _store(env: AgentEnvironment, frame: pd.DataFrame, tenant: str = TENANT) -> str:
    out = io.StringIO()
    frame.to_csv(out, index=False)
    data = out.getvalue().encode()
    profile = profile_csv(io.BytesIO(data))
    dataset_id = str(uuid.uuid4())
    key = f"{tenant}/datasets/{dataset_id}.csv"
    digest = env.artifacts.put(key, data)
    with env.sessions.begin() as session:
        DatasetRepository(session, tenant).add(
            Dataset(
                id=dataset_id,
                tenant_id=tenant,
                name="planted",
                rows=profile.rows,
                columns=profile.as_json()["columns"],
                size_bytes=len(data),
                artifact_key=key,
                sha256=digest,
                created_at=datetime.now(UTC),
            )
        )
    return dataset_id


def _planted(n: int = 240, seed: int = 7) -> pd.DataFrame:
    """y = 1 + 3·a + 2·[region = south] + noise; sales = 100 + 0.5·t + a 12-step season."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    a, noise = rng.normal(size=n), rng.normal(size=n)
    region = rng.choice(["north", "south"], size=n)
    y = 1 + COEFFICIENT * a + np.where(region == "south", 2.0, 0.0) + rng.normal(0, 0.5, n)
    sales = 100 + SLOPE * t + 10 * np.sin(2 * np.pi * t / PERIOD) + rng.normal(0, 1.5, n)
    frame = pd.DataFrame(
        {"t": t, "a": a.round(5), "noise": noise.round(5), "region": region,
         "y": y.round(5), "sales": sales.round(4)}
    )  # fmt: skip
    frame.loc[[33, n // 2 + 30], "noise"] = [40.0, -35.0]  # planted outliers
    return frame


def _analyse(
    env: AgentEnvironment,
    ctx: RecordingContext | None = None,
    config: dict[str, Any] | None = None,
    **inputs: Any,
) -> dict[str, Any]:
    agent = AnalysisAgent(AnalysisConfig.model_validate(config or {}))
    return agent.run(AnalysisInput.model_validate(inputs), ctx or RecordingContext(env=env))


@pytest.fixture(scope="module")
def planted(env: AgentEnvironment) -> str:
    return _store(env, _planted())


def test_analysis_recovers_the_planted_trend_season_coefficient_and_outliers(
    env: AgentEnvironment, planted: str
) -> None:
    ctx = RecordingContext(env=env)
    out = _analyse(env, ctx, dataset_id=planted, target="y", time_column="t")
    assert out["rows"] == 240

    sales = out["trend"]["series"]["sales"]
    assert sales["trend"]["slope"] == pytest.approx(SLOPE, rel=0.05)
    assert sales["seasonality"]["period"] == PERIOD

    terms = {c["term"]: c for c in out["regression"]["coefficients"]}
    assert terms["a"]["coefficient"] == pytest.approx(COEFFICIENT, rel=0.05)
    assert terms["a"]["p_value"] < 0.01
    assert terms["region=south"]["p_value"] < 0.01
    assert terms["sales"]["p_value"] > 0.01
    assert "t" not in out["regression"]["predictors"]  # the time column orders, not explains

    noise = out["outliers"]["noise"]
    assert {(r["row"], r["value"]) for r in noise["rows"]} >= {(34, 40.0), (151, -35.0)}
    assert out["columns"]["region"]["distinct"] == 2
    assert out["correlations"]["strongest_pairs"][0]["columns"] == ["a", "y"]

    # Progress per step, a checkpoint between each.
    assert [r[0] for r in ctx.progress_reports] == [1, 2, 3, 4, 5, 6]
    assert {r[1] for r in ctx.progress_reports} == {6}
    assert ctx.checkpoints >= 7


def test_a_noise_column_is_not_significant(env: AgentEnvironment) -> None:
    rng = np.random.default_rng(11)
    a, noise = rng.normal(size=200), rng.normal(size=200)
    frame = pd.DataFrame({"a": a, "noise": noise, "y": 2 * a + rng.normal(0, 0.5, 200)})
    out = _analyse(env, dataset_id=_store(env, frame), target="y")
    terms = {c["term"]: c for c in out["regression"]["coefficients"]}
    assert terms["a"]["p_value"] < 0.01
    assert terms["noise"]["p_value"] > 0.05
    assert terms["noise"]["significant"] is False


def test_the_content_report_of_an_analysis_states_the_planted_coefficient(
    env: AgentEnvironment, planted: str
) -> None:
    analysis = _analyse(
        env, dataset_id=planted, target="y", time_column="t", columns=["a", "region"]
    )
    assert set(analysis["columns"]) == {"t", "a", "region", "y"}
    report = ContentAgent(ContentConfig(title="Planted")).run(
        ContentInput(analysis=analysis), RecordingContext(env=env)
    )
    found = re.search(r"Each unit increase in a changes y by ([-\d.]+)", report["markdown"])
    assert found is not None
    assert float(found.group(1)) == pytest.approx(COEFFICIENT, rel=0.05)
    assert "<h2>Analysis</h2>" in report["html"]


def test_a_missing_dataset_or_column_and_too_few_rows_say_what_to_change(
    env: AgentEnvironment, planted: str
) -> None:
    with pytest.raises(AgentInputError, match="there is no dataset"):
        _analyse(env, dataset_id=str(uuid.uuid4()))
    with pytest.raises(AgentInputError, match="no column 'revenue'; its columns are t, a"):
        _analyse(env, dataset_id=planted, target="revenue")
    with pytest.raises(AgentInputError, match="no column 'b'"):
        _analyse(env, dataset_id=planted, columns=["a", "b"])
    tiny = _store(env, pd.DataFrame({"a": [1.0, 2.0], "y": [3.0, 4.0]}))
    with pytest.raises(AgentInputError, match="has 2 rows; an analysis needs at least 3"):
        _analyse(env, dataset_id=tiny)


def test_another_tenants_dataset_is_not_there(env: AgentEnvironment, planted: str) -> None:
    ctx = RecordingContext(env=env, tenant="t2")
    with pytest.raises(AgentInputError, match="there is no dataset"):
        _analyse(env, ctx, dataset_id=planted)


def test_a_cancelled_analysis_stops_at_the_next_checkpoint(
    env: AgentEnvironment, planted: str
) -> None:
    ctx = RecordingContext(env=env, cancel_at=2)
    with pytest.raises(RunCancelled):
        _analyse(env, ctx, dataset_id=planted, target="y", time_column="t")
    assert [r[0] for r in ctx.progress_reports] == [1, 2]


def test_a_datetime_time_column_infers_the_season_from_its_frequency(
    env: AgentEnvironment,
) -> None:
    frame = _planted(n=120)
    frame["month"] = pd.date_range("2014-01-01", periods=120, freq="MS").strftime("%Y-%m-%d")
    out = _analyse(env, dataset_id=_store(env, frame.drop(columns=["t"])), time_column="month")
    sales = out["trend"]["series"]["sales"]
    assert sales["seasonality"]["period"] == PERIOD
    assert sales["seasonality"]["period_source"] == "frequency"
    assert sales["trend"]["slope_per_step"] == pytest.approx(SLOPE, rel=0.05)
    assert out["columns"]["month"]["kind"] == "datetime"


def test_output_is_strict_json(env: AgentEnvironment) -> None:
    import json

    frame = pd.DataFrame({"a": [1.0, 1.0, 1.0, 1.0], "b": [1.0, 2.0, None, 4.0]})
    out = _analyse(env, dataset_id=_store(env, frame))
    json.dumps(out, allow_nan=False)
    assert out["correlations"]["pearson"][0][1] is None  # a is constant
