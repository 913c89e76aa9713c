"""The ``content`` agent type: structured input to a report in Markdown and HTML.

Light at import: the work is in ``aia_workers.agents.content``, imported by ``run``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from aia_workers.agents.contracts import AgentContext, AgentType

__all__ = ["ContentAgent", "ContentConfig", "ContentInput", "ContentSection"]


class ContentConfig(BaseModel):
    """How a content agent writes; every knob has a default."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(
        default=None, min_length=1, max_length=300, description="used when the input has none"
    )
    summary_sentences: int = Field(default=3, ge=1, le=50, description="sentences in the summary")
    key_phrases: int = Field(default=8, ge=0, le=100, description="key phrases listed")
    use_llm: bool = Field(
        default=True,
        description="Where the deployment has a language model (AIA_LLM_BASE_URL), it writes an "
        "overview paragraph from the summary; the summary stays the extractive one.",
    )


class ContentSection(BaseModel):
    """A section of the report as given: a heading and its Markdown text."""

    model_config = ConfigDict(extra="forbid")

    heading: str = Field(min_length=1, max_length=300)
    text: str = Field(max_length=200_000)


class ContentInput(BaseModel):
    """What to write about: sections, an analysis, research findings; optionally a template.

    ``analysis`` is an ``analysis`` agent's output and ``research`` a
    ``research`` agent's (question, passages, answer). ``template`` is Markdown
    whose ``{{placeholders}}`` name values by dotted path: ``title``,
    ``summary``, ``key_phrases``, ``sentiment.label``, ``sections`` (all the
    report's sections as Markdown), ``body`` (everything below the title),
    ``analysis.…``, ``research.…`` and ``values.…`` (free values of your own).
    """

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=300)
    sections: list[ContentSection] = Field(default_factory=list, max_length=200)
    analysis: dict[str, Any] | None = None
    research: dict[str, Any] | None = None
    template: str | None = Field(default=None, max_length=200_000)
    values: dict[str, Any] = Field(
        default_factory=dict, description="extra values a template can name as values.<name>"
    )


class ContentAgent(AgentType[ContentConfig, ContentInput]):
    """A report: sections, an extractive summary, key phrases and VADER sentiment."""

    name: ClassVar[str] = "content"
    summary: ClassVar[str] = (
        "Writes a report in Markdown and HTML from sections, an analysis and research "
        "findings (or a template): an extractive summary, key phrases and the sentiment"
    )
    config_model: ClassVar[type[BaseModel]] = ContentConfig
    input_model: ClassVar[type[BaseModel]] = ContentInput

    def run(self, inputs: ContentInput, ctx: AgentContext) -> dict[str, Any]:
        from aia_workers.agents.content.report import write_report

        return write_report(self.config, inputs, ctx)
