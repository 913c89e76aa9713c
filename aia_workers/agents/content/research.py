"""Research findings (a ResearchAgent output) as Markdown: the answer with numbered citations.

The reader is lenient about field names, because findings may also come from
a person or another tool: a passage's source is its first present field of
``document``, ``title``, ``document_id``, ``source`` or ``name`` (or the
``name``/``title``/``id`` inside a ``document`` object), its place the first of
``position``, ``offset``, ``start``, ``chunk``, ``sentence`` or ``line``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aia_workers.agents.content.render import inline

__all__ = ["answer_text", "research_markdown"]

_SOURCE_KEYS = ("document", "title", "document_id", "source", "name", "path")
_PLACE_KEYS = ("position", "offset", "start", "chunk", "passage_index", "sentence", "line")
_SNIPPET = 160
_MAX_SOURCES = 10


def answer_text(research: Mapping[str, Any]) -> str:
    """The answer's plain text, whether ``answer`` is a string or an object with a text."""
    answer = research.get("answer")
    if isinstance(answer, str):
        return answer
    if isinstance(answer, Mapping):
        if isinstance(answer.get("text"), str):
            return str(answer["text"])
        return " ".join(_sentence_text(s) for s in answer.get("sentences") or [])
    return ""


def research_markdown(research: Mapping[str, Any]) -> str:
    """The question, the answer (each sentence with its [n] citations), then the sources."""
    blocks: list[str] = []
    question = research.get("question")
    if question:
        blocks.append(f"**Question:** {inline(question)}")
    sources = _Sources()
    answer = research.get("answer")
    sentences = answer.get("sentences") if isinstance(answer, Mapping) else None
    passages = [p for p in research.get("passages") or [] if isinstance(p, Mapping)]
    if isinstance(sentences, Sequence) and sentences and not isinstance(sentences, str):
        parts = []
        for sentence in sentences:
            marks = [sources.number(c) for c in _citations(sentence)]
            cited = "".join(f" [{n}]" for n in dict.fromkeys(marks))
            parts.append(inline(_sentence_text(sentence)) + cited)
        blocks.append(" ".join(parts))
    else:
        text = answer_text(research)
        if text:
            # Without per-sentence citations, the passages behind the answer are its sources.
            marks = [sources.number(p) for p in passages[:_MAX_SOURCES]]
            cited = "".join(f" [{n}]" for n in dict.fromkeys(marks))
            blocks.append(inline(text) + cited)
    for passage in passages:
        if len(sources) >= _MAX_SOURCES:
            break
        sources.number(passage)
    if sources:
        blocks.append("**Sources**")
        blocks.append("\n".join(f"{i}. {s}" for i, s in enumerate(sources.lines, start=1)))
    return "\n\n".join(blocks)


def _sentence_text(sentence: Any) -> str:
    if isinstance(sentence, Mapping):
        return str(sentence.get("text") or "")
    return str(sentence)


def _citations(sentence: Any) -> list[Mapping[str, Any]]:
    if not isinstance(sentence, Mapping):
        return []
    found = sentence.get("citations") or sentence.get("citation")
    if isinstance(found, Mapping):
        return [found]
    if isinstance(found, Sequence) and not isinstance(found, str):
        return [c for c in found if isinstance(c, Mapping)]
    # A sentence that carries its own source fields cites itself.
    return [sentence] if any(sentence.get(k) is not None for k in _SOURCE_KEYS) else []


class _Sources:
    """Numbered sources, one per (document, place) whichever passage or citation named it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._numbers: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self.lines)

    def number(self, cited: Mapping[str, Any]) -> int:
        source: Any = next((cited[k] for k in _SOURCE_KEYS if cited.get(k) is not None), "source")
        if isinstance(source, Mapping):
            source = next(
                (source[k] for k in ("name", "title", "id") if source.get(k) is not None), "source"
            )
        place = next((cited[k] for k in _PLACE_KEYS if cited.get(k) is not None), None)
        key = (str(source), str(place))
        if key not in self._numbers:
            line = inline(source) + (f", position {inline(place)}" if place is not None else "")
            text = cited.get("text")
            if isinstance(text, str) and text.strip():
                snippet = " ".join(text.split())
                if len(snippet) > _SNIPPET:
                    snippet = snippet[: _SNIPPET - 1] + "…"
                line += f": “{inline(snippet)}”"
            self.lines.append(line)
            self._numbers[key] = len(self.lines)
        return self._numbers[key]
