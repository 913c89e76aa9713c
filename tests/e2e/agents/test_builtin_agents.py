"""The built-in agents doing real work through the API and a real ``agents`` worker.

Judged on substance: research ranks the document holding a planted answer in its
top three on the corpus the tests ship; analysis recovers a planted trend and
regression coefficient; the content report carries the key sentences it was
given. (The monitoring agent has tests/e2e/agents/test_monitoring_agent.py.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests import mldata
from tests.support import Stack, wait_status

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).parents[2] / "data" / "agents" / "corpus"
MEDIA = {".md": "text/markdown", ".txt": "text/plain", ".html": "text/html", ".csv": "text/csv"}


@pytest.fixture(scope="module")
def api(agents_stack: Stack) -> Iterator[httpx.Client]:
    with agents_stack.client(timeout=60) as client:
        yield client


def _agent(api: httpx.Client, type_name: str, config: dict[str, Any]) -> str:
    body = {"name": f"{type_name}-{uuid.uuid4().hex[:8]}", "type": type_name, "config": config}
    created = api.post("/v1/agents", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _run(api: httpx.Client, agent_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    started = api.post(f"/v1/agents/{agent_id}/runs", json={"input": inputs})
    assert started.status_code == 202, started.text
    done = wait_status(api, started.json()["id"], {"succeeded", "failed"}, timeout=120)
    assert done["status"] == "succeeded", done["error"]
    return done["result"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def corpus(api: httpx.Client) -> dict[str, str]:
    """The shipped corpus uploaded over the API: its id, and each file's document id."""
    made = api.post("/v1/agents/corpora", json={"name": f"town-{uuid.uuid4().hex[:8]}"})
    assert made.status_code == 201, made.text
    corpus_id = made.json()["id"]
    documents = {"": corpus_id}
    for file in sorted(CORPUS.iterdir()):
        sent = api.post(
            f"/v1/agents/corpora/{corpus_id}/documents",
            params={"name": file.name},
            content=file.read_bytes(),
            headers={"content-type": MEDIA[file.suffix]},
        )
        assert sent.status_code == 201, sent.text
        documents[file.name] = sent.json()["id"]
    return documents


@pytest.mark.parametrize(
    ("question", "document", "planted"),
    [
        (
            "How much honey does a hive on a rooftop yield in a year?",
            "urban_beekeeping.txt",
            "eighteen kilograms of surplus honey",
        ),
        (
            "Can I visit the harbour museum on a Monday?",
            "harbour_museum.html",
            "closed on Mondays",
        ),
        (
            "What was the average nitrate concentration at the weir?",
            "fenwick_water_report.txt",
            "averaged 3.4 milligrams per litre",
        ),
    ],
)
def test_research_ranks_the_planted_answer_in_its_top_three(
    api: httpx.Client, corpus: dict[str, str], question: str, document: str, planted: str
) -> None:
    agent = _agent(api, "research", {"corpus_id": corpus[""], "top_k": 5})
    result = _run(api, agent, {"question": question})
    top = [p["document_id"] for p in result["passages"][:3]]
    assert corpus[document] in top
    assert result["method"] == "extractive"
    # The answer quotes the planted sentence, and its citation points at it.
    cited = [s for s in result["answer"]["sentences"] if planted in s["text"]]
    assert cited, result["answer"]
    text = api.get(f"/v1/agents/corpora/{corpus['']}/documents/{cited[0]['document_id']}/text").text
    assert text[cited[0]["start"] : cited[0]["end"]] == cited[0]["text"]


def _planted_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 120
    day = pd.date_range("2026-01-01", periods=n, freq="D")
    price = rng.uniform(1, 10, n)
    noise = rng.normal(size=n)
    weekly = 4 * np.sin(2 * np.pi * np.arange(n) / 7)
    # Sales climb 0.5 a day, swing weekly, and fall 2.5 per unit of price.
    sales = 100 + 0.5 * np.arange(n) + weekly - 2.5 * price + rng.normal(scale=0.5, size=n)
    return pd.DataFrame(
        {"day": day.strftime("%Y-%m-%d"), "price": price, "noise": noise, "sales": sales}
    )


def test_analysis_recovers_a_planted_trend_and_coefficient(api: httpx.Client) -> None:
    uploaded = api.post(
        "/v1/ml/datasets",
        params={"name": "sales"},
        content=mldata.to_csv(_planted_frame()),
        headers={"content-type": "text/csv"},
    )
    assert uploaded.status_code == 201, uploaded.text
    agent = _agent(api, "analysis", {})
    result = _run(
        api,
        agent,
        {"dataset_id": uploaded.json()["id"], "target": "sales", "time_column": "day", "period": 7},
    )
    sales = result["trend"]["series"]["sales"]
    assert sales["trend"]["slope"] == pytest.approx(0.5, rel=0.05)
    assert sales["seasonality"]["period"] == 7
    terms = {c["term"]: c for c in result["regression"]["coefficients"]}
    assert terms["price"]["coefficient"] == pytest.approx(-2.5, abs=0.25)
    assert terms["price"]["p_value"] < 0.01
    assert not terms["noise"]["significant"]
    assert result["columns"]["sales"]["count"] == 120


def test_the_content_report_holds_the_key_sentences_it_was_given(api: httpx.Client) -> None:
    # The key sentences are about the report's subject (and so about each other);
    # the filler is about nothing else in it.
    key = [
        "The new depot cut delivery times for customers by a third.",
        "Faster delivery from the new depot brought customer complaints down.",
        "Customers praised the new depot for delivery times they can trust.",
    ]
    filler = [
        "The meeting started at ten.",
        "Coffee was served in the hall.",
        "The room was on the second floor.",
        "Someone asked about parking.",
    ]
    text = " ".join([filler[0], key[0], filler[1], key[1], filler[2], key[2], filler[3]])
    agent = _agent(api, "content", {"summary_sentences": 3})
    result = _run(
        api,
        agent,
        {"title": "Quarterly <b>review</b>", "sections": [{"heading": "Notes", "text": text}]},
    )
    assert result["summary"] == key
    for sentence in key:
        assert sentence in result["markdown"]
    assert "<b>review</b>" not in result["html"]
    assert result["method"] == "extractive"
