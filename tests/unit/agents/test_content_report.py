"""The content agent: the summary keeps the key sentences, the HTML is inert, numbers are stated."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from aia_workers.agents.builtin.content import ContentAgent, ContentConfig, ContentInput
from aia_workers.agents.content.sentences import sentences
from aia_workers.agents.contracts import AgentInputError, RunCancelled
from aia_workers.agents.llm import LLMClient
from tests.agentruns import RecordingContext, offline_environment
from tests.llm_server import running

KEY = [
    "The solar farm produced record electricity this summer.",
    "Electricity output from the solar farm rose because the new panels track the sun.",
    "The new panels at the solar farm cut costs and raised electricity output.",
]
FILLER = [
    "Bananas are yellow.",
    "My cat sleeps all day.",
    "Trains were late on Tuesday.",
    "It rained in Paris.",
    "The museum opens at nine.",
]
# The key sentences among unrelated ones, in an order that is neither first nor last.
TEXT = " ".join([FILLER[0], KEY[0], FILLER[1], KEY[1], FILLER[2], FILLER[3], KEY[2], FILLER[4]])


_OFFLINE = offline_environment(Path(tempfile.mkdtemp(prefix="aia-content-")))


def _run(config: dict[str, Any] | None = None, **inputs: Any) -> dict[str, Any]:
    agent = ContentAgent(ContentConfig.model_validate(config or {}))
    # The content agent touches neither the database nor Redis; no language model.
    return agent.run(ContentInput.model_validate(inputs), RecordingContext(env=_OFFLINE))


def test_the_summary_picks_the_planted_key_sentences_in_their_order() -> None:
    out = _run(title="Solar", sections=[{"heading": "Field notes", "text": TEXT}])
    assert out["summary"] == KEY
    markdown = out["markdown"]
    assert markdown.startswith("# Solar\n")
    assert "## Summary" in markdown
    assert "## Field notes" in markdown
    for sentence in KEY + FILLER:
        assert sentence in markdown


def test_key_phrases_name_the_topic_and_skip_stop_words() -> None:
    out = _run(sections=[{"heading": "Notes", "text": TEXT}], config={"key_phrases": 4})
    assert len(out["key_phrases"]) == 4
    assert out["key_phrases"][0] == "solar farm"
    assert any("electricity" in phrase for phrase in out["key_phrases"])
    assert not {"the", "at", "from"} & set(out["key_phrases"])


def test_summary_length_follows_the_configuration() -> None:
    out = _run(sections=[{"heading": "Notes", "text": TEXT}], config={"summary_sentences": 1})
    assert len(out["summary"]) == 1
    assert out["summary"][0] in KEY


@pytest.mark.parametrize(
    ("text", "label", "sign"),
    [
        ("We love the new design. The launch was a wonderful success! Customers are happy.",
         "positive", 1),
        ("The outage was a terrible failure. Customers are angry and sad. Sales collapsed badly.",
         "negative", -1),
    ],
)  # fmt: skip
def test_sentiment_has_the_sign_of_clearly_charged_text(text: str, label: str, sign: int) -> None:
    mood = _run(sections=[{"heading": "Week", "text": text}])["sentiment"]
    assert mood["label"] == label
    assert mood["compound"] * sign > 0.3
    assert mood["pos"] + mood["neu"] + mood["neg"] == pytest.approx(1.0, abs=0.01)


HOSTILE = '<script>alert("x")</script>'


def test_html_from_every_input_field_is_inert() -> None:
    out = _run(
        title=f"Report {HOSTILE}",
        sections=[
            {
                "heading": f"Head {HOSTILE}",
                "text": f"Body {HOSTILE} <img src=x onerror=alert(1)> "
                "[click](javascript:alert(1)) and **bold**.",
            }
        ],
        research={
            "question": f"Why {HOSTILE}?",
            "answer": f"Because {HOSTILE}.",
            "passages": [{"document": f"doc{HOSTILE}.md", "position": 1, "text": HOSTILE}],
        },
    )
    html = out["html"]
    assert "<script" not in html
    assert "<img" not in html
    assert 'href="javascript' not in html
    assert "&lt;script&gt;" in html
    # Markdown itself still renders.
    assert "<strong>bold</strong>" in html
    assert "<h1>" in html


def test_template_placeholders_are_looked_up_never_evaluated() -> None:
    template = (
        "# {{ title }}\n\nMood: {{sentiment.label}}; phrases: {{key_phrases}}.\n\n"
        "Owner: {{values.owner}}, first tag {{values.tags.0}}. Not code: {{ 1+1 }} "
        "{{ __import__('os') }}\n\n{{sections}}"
    )
    out = _run(
        title="Weekly",
        template=template,
        sections=[{"heading": "Notes", "text": TEXT}],
        values={"owner": "Ada", "tags": ["energy", "farm"]},
    )
    markdown = out["markdown"]
    assert markdown.startswith("# Weekly\n")
    assert "Owner: Ada, first tag energy." in markdown
    assert "Mood: neutral" in markdown or "Mood: positive" in markdown
    assert "{{ 1+1 }}" in markdown
    assert "{{ __import__('os') }}" in markdown
    assert "## Notes" in markdown
    assert "solar farm" in markdown


def test_a_template_naming_what_is_not_there_says_what_is() -> None:
    with pytest.raises(AgentInputError, match=r"\{\{values.ownr\}\}.*no 'ownr'; it has owner"):
        _run(template="{{values.ownr}}", values={"owner": "Ada"})
    with pytest.raises(AgentInputError, match="is an object; name one of its fields"):
        _run(template="{{sentiment}}", sections=[{"heading": "a", "text": "Fine."}])


ANALYSIS = {
    "dataset_id": "d1",
    "rows": 300,
    "columns": {"a": {"kind": "numeric", "count": 300, "missing": 0, "mean": 0.0, "std": 1.0,
                      "min": -3.0, "median": 0.0, "max": 3.0}},
    "correlations": {"strongest_pairs": [
        {"columns": ["a", "y"], "pearson": 0.97, "spearman": 0.96, "n": 300, "p_value": 0.0}]},
    "outliers": {"a": {"method": "iqr", "lower": -2.7, "upper": 2.7, "count": 2,
                       "rows": [{"row": 18, "value": 12.0}]}},
    "trend": {"time_column": "t", "time_unit": "unit", "series": {"sales": {
        "method": "stl",
        "seasonality": {"period": 12, "strength": 0.95, "amplitude": 10.1},
        "trend": {"slope": 0.5, "slope_per_step": 0.5, "direction": "up",
                  "start": {"value": 100.0}, "end": {"value": 171.5}}}}},
    "regression": {"target": "y", "n": 300, "predictors": ["a", "noise"], "alpha": 0.05,
                   "r_squared": 0.97, "adj_r_squared": 0.969, "coefficients": [
        {"term": "const", "coefficient": 1.0, "p_value": 0.0, "significant": True},
        {"term": "a", "coefficient": 2.998, "p_value": 1e-80, "significant": True,
         "ci_low": 2.94, "ci_high": 3.05},
        {"term": "noise", "coefficient": 0.01, "p_value": 0.71, "significant": False}]},
}  # fmt: skip


def test_an_analysis_becomes_sentences_stating_its_numbers() -> None:
    markdown = _run(analysis=ANALYSIS)["markdown"]
    assert "## Analysis" in markdown
    assert "Columns a and y are strongly positively correlated (Pearson r = 0.97" in markdown
    assert "Column sales trends upward by 0.5 per step" in markdown
    assert "season of 12 steps" in markdown
    assert "Each unit increase in a changes y by 2.998 (95% CI 2.94 to 3.05, p < 0.001)." in (
        markdown
    )
    assert "Not significant at the 5% level: noise (p = 0.71)." in markdown
    assert "Column a has 2 outliers" in markdown
    assert "| a | 300 | 0 |" in markdown


def test_research_findings_keep_their_answer_and_cite_their_sources() -> None:
    research = {
        "question": "What powers the farm?",
        "answer": {
            "text": "The farm runs on solar panels. Batteries store the surplus.",
            "sentences": [
                {"text": "The farm runs on solar panels.", "document": "farm.md", "position": 3},
                {"text": "Batteries store the surplus.",
                 "citations": [{"document": "storage.txt", "position": 0}]},
            ],
        },
        "passages": [{"document": "farm.md", "position": 3, "text": "The farm runs on solar."}],
    }  # fmt: skip
    out = _run(research=research)
    markdown = out["markdown"]
    assert out["title"] == "What powers the farm?"
    assert "The farm runs on solar panels. [1] Batteries store the surplus. [2]" in markdown
    assert re.search(r"1\. farm\.md, position 3", markdown)
    assert re.search(r"2\. storage\.txt, position 0", markdown)


def test_a_cancelled_run_stops_at_the_next_checkpoint() -> None:
    ctx = RecordingContext(env=_OFFLINE, cancel_at=1)
    agent = ContentAgent(ContentConfig())
    with pytest.raises(RunCancelled):
        agent.run(ContentInput(sections=[{"heading": "a", "text": TEXT}]), ctx)  # type: ignore[list-item]
    assert [r[0] for r in ctx.progress_reports] == [1]


def test_an_empty_input_is_refused() -> None:
    with pytest.raises(AgentInputError, match="nothing to write about"):
        _run(sections=[{"heading": "Empty", "text": "  "}])


def test_sentences_split_at_ends_but_not_at_decimals_or_abbreviations() -> None:
    text = "# Heading\nDr. Smith measured 3.5 units, e.g. in May. It rose! Did it? Yes.\n- An item"
    assert sentences(text) == [
        "Dr. Smith measured 3.5 units, e.g. in May.",
        "It rose!",
        "Did it?",
        "Yes.",
        "An item",
    ]


def test_agent_type_modules_stay_light_at_import() -> None:
    code = (
        "import sys\n"
        "import aia_workers.agents.builtin.analysis, aia_workers.agents.builtin.content\n"
        "heavy = {'numpy', 'pandas', 'sklearn', 'statsmodels', 'scipy', 'nltk', 'markdown_it'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_language_model_writes_an_overview_from_the_summary() -> None:
    sections = [{"heading": "Field notes", "text": TEXT}]
    offline = _run(title="Solar", sections=sections)
    with running() as server, LLMClient(base_url=server.base_url, model="tiny") as llm:
        env = replace(_OFFLINE, llm=llm)
        agent = ContentAgent(ContentConfig())
        inputs = ContentInput.model_validate({"title": "Solar", "sections": sections})
        written = agent.run(inputs, RecordingContext(env=env))
        [request] = server.requests
        server.fail(500, times=3)
        failed = agent.run(inputs, RecordingContext(env=env))
    # The test server answers with the prompt's first line.
    assert written["overview"] == "Report: Solar"
    assert written["method"] == "llm"
    assert "## Overview\n\nReport: Solar" in written["markdown"]
    assert "<h2>Overview</h2>" in written["html"]
    for sentence in offline["summary"]:
        assert sentence in request["body"]["messages"][-1]["content"]
    assert written["summary"] == offline["summary"]
    assert offline["method"] == "extractive"
    assert offline["overview"] is None
    assert failed["method"] == "extractive"
    assert "500" in failed["llm_error"]
    assert "Overview" not in failed["markdown"]
