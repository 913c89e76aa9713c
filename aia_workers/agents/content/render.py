"""Markdown to HTML with raw HTML off, and escaping of values put into Markdown."""

from __future__ import annotations

import re
from functools import cache

from markdown_it import MarkdownIt

__all__ = ["inline", "to_html"]

# Characters that would start Markdown syntax (or raw HTML) inside a line of text.
_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


@cache
def _renderer() -> MarkdownIt:
    # CommonMark with tables; "html": False renders any tag in the input as text, so a
    # <script> in a section comes out as &lt;script&gt;, and markdown-it's link check
    # drops javascript:, vbscript: and file: URLs.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def to_html(markdown: str) -> str:
    """The HTML fragment of ``markdown``; no raw HTML and no script URL survives."""
    return str(_renderer().render(markdown))


def inline(value: object) -> str:
    """``value`` as literal text on one line of Markdown: every mark escaped, no line breaks."""
    text = " ".join(str(value).split())
    return _SPECIAL.sub(r"\\\1", text)
