"""Markdown to plain sentences, without a tokenizer download (NLTK's punkt is not used)."""

from __future__ import annotations

import re

__all__ = ["plain", "sentences"]

# Abbreviations after which a full stop does not end a sentence (lower case, no final dot).
_ABBREVIATIONS = frozenset(
    [
        "e.g",
        "i.e",
        "etc",
        "vs",
        "cf",
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "inc",
        "ltd",
        "co",
        "no",
        "fig",
        "st",
        "approx",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)
# A sentence ends at . ! or ? (and any closing quote or bracket) followed by white space.
_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)\.$")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`|~~)(?=\S)(.+?)(?<=\S)\1")
_BLOCK_MARK = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_CITATION = re.compile(r"\s*\[\d+(?:,\s*\d+)*\]")


def plain(markdown: str) -> list[str]:
    """The paragraphs of ``markdown`` as plain text: marks, links, HTML tags and tables out.

    Each list item and paragraph is one block; headings, fenced code and
    tables are left out (they are not sentences). Citation marks like
    ``[2]`` are dropped: they are not words of the sentence.
    """
    blocks: list[str] = []
    current: list[str] = []
    fenced = False

    def flush() -> None:
        if current:
            blocks.append(" ".join(current))
            current.clear()

    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fenced = not fenced
            flush()
            continue
        if fenced or stripped.startswith("|") or not stripped:
            flush()
            continue
        marked = _BLOCK_MARK.match(line)
        heading = stripped.startswith("#") and marked is not None
        if marked:
            flush()
            line = line[marked.end() :]
        text = _EMPHASIS.sub(r"\2", _LINK.sub(r"\1", _TAG.sub(" ", line)))
        text = " ".join(_CITATION.sub("", text).split())
        if text:
            current.append(text)
        if heading:
            # A heading names the text below it; it is not a sentence of it.
            current.clear()
    flush()
    return blocks


def sentences(markdown: str) -> list[str]:
    """The sentences of ``markdown``, in order, each stripped of Markdown."""
    out: list[str] = []
    for block in plain(markdown):
        start = 0
        for end in _END.finditer(block):
            before = _WORD_BEFORE.search(block[: end.start() + 1])
            if before and before.group(1).lower() in _ABBREVIATIONS:
                continue
            # "3.5" never gets here (no space after the dot); "in step 3. The" is an end.
            out.append(block[start : end.end()].strip())
            start = end.end()
        rest = block[start:].strip()
        if rest:
            out.append(rest)
    return [s for s in out if any(ch.isalnum() for ch in s)]
