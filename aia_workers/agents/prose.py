"""Prose by a language model, for the agents that can use one: research answers, report overviews.

Each asks the model to write from what the offline methods found (the ranked
passages, the report's summary sentences), so what the model says stays
grounded in cited text, and the offline result is kept beside it. A model that
fails leaves the offline result in place: the run still answers, and says why
the model's prose is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aia_workers.agents.llm import LLMClient, LLMError

if TYPE_CHECKING:
    from aia_workers.agents.search import Answer, AnswerWriter, Hit

__all__ = ["model_answer_writer", "model_overview"]

log = logging.getLogger(__name__)

_ANSWER_SYSTEM = (
    "You answer questions from the numbered passages you are given and from nothing else. "
    "Cite the passages you use as [n]. If the passages do not hold the answer, say so."
)
_OVERVIEW_SYSTEM = (
    "You write a short overview paragraph of a report from its key sentences and phrases. "
    "State only what they state; add no numbers or facts of your own."
)


def model_answer_writer(llm: LLMClient, fallback: AnswerWriter) -> AnswerWriter:
    """A writer whose answer text is the model's, its cited sentences the ``fallback``'s."""

    def write(question: str, hits: Sequence[Hit], *, sentences: int) -> Answer:
        from aia_workers.agents.search import Answer

        found = fallback(question, hits, sentences=sentences)
        if not hits:
            return found
        numbered = "\n".join(
            f"[{h.rank}] ({h.passage.document}, characters {h.passage.start}-{h.passage.end}) "
            f"{h.passage.text}"
            for h in hits
        )
        prompt = (
            f"Question: {question}\n\nPassages:\n{numbered}\n\n"
            f"Answer in at most {sentences} sentences."
        )
        try:
            text = llm.complete(prompt, system=_ANSWER_SYSTEM).strip()
        except LLMError as exc:
            log.warning("the language model gave no answer; the extractive one stands: %s", exc)
            return Answer(found.text, found.sentences, f"extractive (language model: {exc})")
        if not text:
            return found
        return Answer(text, found.sentences, "llm")

    return write


def model_overview(
    llm: LLMClient, title: str, summary: Sequence[str], phrases: Sequence[str]
) -> tuple[str | None, str | None]:
    """The model's overview paragraph, or None and why not."""
    if not summary:
        return None, None
    prompt = (
        f"Report: {title}\n\nKey sentences:\n"
        + "\n".join(f"- {s}" for s in summary)
        + ("\n\nKey phrases: " + ", ".join(phrases) if phrases else "")
        + "\n\nWrite the overview in one paragraph."
    )
    try:
        text = llm.complete(prompt, system=_OVERVIEW_SYSTEM).strip()
    except LLMError as exc:
        log.warning("the language model wrote no overview: %s", exc)
        return None, str(exc)
    return (text or None), None
