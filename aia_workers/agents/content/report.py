"""One content run: sections, summary, key phrases, sentiment, then Markdown and HTML."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aia_workers.agents.content.narrative import analysis_markdown
from aia_workers.agents.content.phrases import key_phrases
from aia_workers.agents.content.render import inline, to_html
from aia_workers.agents.content.research import answer_text, research_markdown
from aia_workers.agents.content.sentences import sentences
from aia_workers.agents.content.summary import summarise
from aia_workers.agents.content.template import fill
from aia_workers.agents.contracts import AgentContext, AgentInputError
from aia_workers.agents.jsonsafe import finite
from aia_workers.ml.trainers.sentiment import VaderModel

if TYPE_CHECKING:
    from aia_workers.agents.builtin.content import ContentConfig, ContentInput

__all__ = ["sentiment", "write_report"]

_STEPS = 4


def write_report(config: ContentConfig, inputs: ContentInput, ctx: AgentContext) -> dict[str, Any]:
    """The report: ``markdown``, ``html``, ``summary``, ``key_phrases``, ``sentiment``.

    The sections are the input's, then one written from the analysis, then one
    from the research. The summary and key phrases are drawn from all of their
    sentences; the sentiment from the input's own prose (its sections and the
    research answer), since sentences stating numbers carry none. AgentInputError
    when there is nothing to write about, or the template names what is not there.
    """
    ctx.checkpoint()
    sections: list[tuple[str, str]] = [(s.heading, s.text) for s in inputs.sections]
    # What the report states: its sections' text, the analysis, the research answer
    # (not the question, nor the list of sources).
    statements = [s.text for s in inputs.sections]
    # What the input itself says: numbers stated by the analysis carry no sentiment.
    prose = [s.text for s in inputs.sections]
    if inputs.analysis:
        written = analysis_markdown(inputs.analysis)
        sections.append(("Analysis", written))
        statements.append(written)
    if inputs.research:
        sections.append(("Research", research_markdown(inputs.research)))
        statements.append(answer_text(inputs.research))
        prose.append(answer_text(inputs.research))
    if not any(text.strip() for _, text in sections) and not inputs.template:
        raise AgentInputError(
            "there is nothing to write about; give sections, an analysis, research findings "
            "or a template"
        )
    title = inputs.title or config.title or _question(inputs.research) or "Report"
    ctx.progress(1, _STEPS, "wrote the sections")
    ctx.checkpoint()

    every = [s for text in statements for s in sentences(text)]
    summary = [every[i] for i in summarise(every, config.summary_sentences)]
    phrases = key_phrases(every, config.key_phrases)
    ctx.progress(2, _STEPS, "summarised")
    ctx.checkpoint()

    felt = [s for text in prose for s in sentences(text)] or every
    mood = sentiment(felt)
    ctx.progress(3, _STEPS, "scored the sentiment")
    ctx.checkpoint()

    sections_md = "\n\n".join(f"## {inline(h)}\n\n{text.strip()}" for h, text in sections)
    overview, model_error = _overview(config, ctx, title, summary, phrases)
    head = []
    if overview:
        head.append("## Overview\n\n" + overview)
    if summary:
        head.append("## Summary\n\n" + " ".join(summary))
    if phrases:
        head.append("**Key phrases:** " + ", ".join(inline(p) for p in phrases))
    head.append(f"**Sentiment:** {mood['label']} (compound {mood['compound']:.3f})")
    body = "\n\n".join([*head, sections_md] if sections_md else head)
    if inputs.template:
        markdown = fill(
            inputs.template,
            {
                "title": title,
                "summary": " ".join(summary),
                "overview": overview or "",
                "key_phrases": phrases,
                "sentiment": mood,
                "sections": sections_md,
                "body": body,
                "analysis": inputs.analysis or {},
                "research": inputs.research or {},
                "values": inputs.values,
            },
        )
    else:
        markdown = f"# {inline(title)}\n\n{body}\n"
    html = to_html(markdown)
    ctx.progress(4, _STEPS, "rendered Markdown and HTML")
    return finite(  # type: ignore[no-any-return]
        {
            "title": title,
            "markdown": markdown,
            "html": html,
            "summary": summary,
            "overview": overview,
            "key_phrases": phrases,
            "sentiment": mood,
            "method": "llm" if overview else "extractive",
            **({"llm_error": model_error} if model_error else {}),
        }
    )


def _overview(
    config: ContentConfig,
    ctx: AgentContext,
    title: str,
    summary: list[str],
    phrases: list[str],
) -> tuple[str | None, str | None]:
    """The language model's overview paragraph where there is one to ask; else None."""
    llm = ctx.env.llm
    if llm is None or not config.use_llm:
        return None, None
    from aia_workers.agents.prose import model_overview

    return model_overview(llm, title, summary, phrases)


def sentiment(texts: list[str]) -> dict[str, Any]:
    """VADER's scores averaged over ``texts`` (one sentence each), labelled by AIA's thresholds.

    VADER is tuned for sentences, and over a long text its compound saturates
    at ±1, so each sentence is scored and the mean taken.
    """
    model = VaderModel("text")
    if not texts:
        return {"compound": 0.0, "pos": 0.0, "neu": 1.0, "neg": 0.0, "label": "neutral"}
    scores = [model.score(t) for t in texts]
    compound = sum(s["compound"] for s in scores) / len(scores)
    mean = {k: sum(s["scores"][k] for s in scores) / len(scores) for k in ("pos", "neu", "neg")}
    return {"compound": compound, **mean, "label": model.label(compound)}


def _question(research: dict[str, Any] | None) -> str | None:
    question = (research or {}).get("question")
    return str(question) if question else None
