"""The text of a corpus document: plain text, Markdown, HTML or CSV in, searchable text out.

The extracted text is what citations point into: a passage's or a sentence's
``start`` and ``end`` are character offsets into it. Blocks (paragraphs,
headings, list items) are separated by a blank line, so the sentence splitter
never runs a heading into the paragraph below it; a CSV gives one line per row,
``"column: value; column: value"``, each row a passage of its own.

Standard library only: the API extracts on upload to refuse a file with no
usable text before storing it.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from enum import StrEnum
from html.parser import HTMLParser
from pathlib import PurePosixPath

from aia_workers.errors import AiaError

__all__ = [
    "DocumentError",
    "DocumentKind",
    "Extracted",
    "UnsupportedDocumentType",
    "document_kind",
    "extract_text",
]


class DocumentError(AiaError):
    """Raised when a document holds no text we can use: empty, not UTF-8, or malformed."""


class UnsupportedDocumentType(DocumentError):
    """Raised when a document is of a media type a corpus does not take."""


class DocumentKind(StrEnum):
    """The media types a corpus takes, by their canonical name."""

    TEXT = "text/plain"
    MARKDOWN = "text/markdown"
    HTML = "text/html"
    CSV = "text/csv"


_ALIASES = {
    "text/x-markdown": DocumentKind.MARKDOWN,
    "application/xhtml+xml": DocumentKind.HTML,
    "application/csv": DocumentKind.CSV,
}
_EXTENSIONS = {
    ".txt": DocumentKind.TEXT,
    ".text": DocumentKind.TEXT,
    ".md": DocumentKind.MARKDOWN,
    ".markdown": DocumentKind.MARKDOWN,
    ".html": DocumentKind.HTML,
    ".htm": DocumentKind.HTML,
    ".csv": DocumentKind.CSV,
}
# What clients send when they do not know; the file name's extension decides then.
_GENERIC = {"", "application/octet-stream", "binary/octet-stream"}
ACCEPTED = ", ".join(k.value for k in DocumentKind)


def document_kind(media_type: str, name: str = "") -> DocumentKind:
    """The kind of a document sent as ``media_type`` (parameters allowed) named ``name``."""
    bare = media_type.split(";", 1)[0].strip().lower()
    if bare in _GENERIC:
        suffix = PurePosixPath(name).suffix.lower()
        if suffix in _EXTENSIONS:
            return _EXTENSIONS[suffix]
    else:
        for kind in DocumentKind:
            if bare == kind.value:
                return kind
        if bare in _ALIASES:
            return _ALIASES[bare]
    raise UnsupportedDocumentType(
        f"a corpus takes {ACCEPTED} (got {bare or 'no media type'}); send the file with one "
        "of these content types, or name it with .txt, .md, .html or .csv"
    )


@dataclass(frozen=True, slots=True)
class Extracted:
    """The searchable text of a document and what kind it came from."""

    kind: DocumentKind
    text: str


def extract_text(data: bytes, kind: DocumentKind) -> Extracted:
    """The text of ``data``; DocumentError when there is none or it is not UTF-8."""
    if not data.strip():
        raise DocumentError("the document is empty; send a file with some text in it")
    if b"\0" in data:
        raise DocumentError("the document holds binary data (NUL bytes); send UTF-8 text")
    try:
        decoded = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"the document is not UTF-8 text (byte {exc.start} cannot be read); save it as UTF-8"
        ) from None
    decoded = decoded.replace("\r\n", "\n").replace("\r", "\n")
    if kind is DocumentKind.MARKDOWN:
        text = _markdown(decoded)
    elif kind is DocumentKind.HTML:
        text = _html(decoded)
    elif kind is DocumentKind.CSV:
        text = _csv(decoded)
    else:
        text = _plain(decoded)
    if not text:
        raise DocumentError(f"the {kind.value} document has no text to search")
    return Extracted(kind, text)


def _plain(text: str) -> str:
    # Trailing spaces and runs of blank lines carry nothing; lines stay as they are.
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _blocks(blocks: list[str]) -> str:
    kept = (re.sub(r"\s+", " ", b).strip() for b in blocks)
    return "\n\n".join(b for b in kept if b)


# -- Markdown ---------------------------------------------------------------------------

_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_MD_RULE = re.compile(r"^\s{0,3}(?:[-*_]\s*){3,}$")
_MD_SETEXT = re.compile(r"^\s{0,3}(?:=+|-+)\s*$")
_MD_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+")
_MD_QUOTE = re.compile(r"^\s*(?:>\s?)+")
_MD_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_MD_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
_MD_INLINE = (
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images: their alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links: their text
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # reference links
    (re.compile(r"<(https?://[^>\s]+)>"), r"\1"),  # autolinks
    (re.compile(r"</?[A-Za-z][^>]*>"), ""),  # inline HTML tags
    (re.compile(r"`([^`]*)`"), r"\1"),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),
    # Underscores only at word edges, so snake_case names survive.
    (re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),
    (re.compile(r"~~(.+?)~~"), r"\1"),
)
_MD_LINK_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+\S+")


def _inline(text: str) -> str:
    for pattern, replacement in _MD_INLINE:
        text = pattern.sub(replacement, text)
    return text


def _markdown(text: str) -> str:
    blocks: list[str] = []
    paragraph: list[str] = []
    fenced = False

    def flush() -> None:
        if paragraph:
            blocks.append(" ".join(paragraph))
            paragraph.clear()

    for line in text.split("\n"):
        if _MD_FENCE.match(line):
            flush()
            fenced = not fenced
            continue
        if fenced:
            # Code keeps its lines; each is a block, as code is not prose to join.
            blocks.append(line)
            continue
        if not line.strip() or _MD_RULE.match(line) or _MD_LINK_DEFINITION.match(line):
            flush()
            continue
        if _MD_SETEXT.match(line) and paragraph:
            # The line above was a heading: a block of its own.
            flush()
            continue
        heading = _MD_HEADING.match(line)
        if heading:
            flush()
            blocks.append(_inline(heading.group(1)))
            continue
        line = _MD_QUOTE.sub("", line)
        if "|" in line:
            if _MD_TABLE_RULE.match(line):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            flush()
            blocks.append(_inline("; ".join(c for c in cells if c)))
            continue
        item = _MD_ITEM.match(line)
        if item:
            flush()
            line = line[item.end() :]
        paragraph.append(_inline(line.strip()))
    flush()
    return _blocks(blocks)


# -- HTML -------------------------------------------------------------------------------

_SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe"})
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
        "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
        "summary", "table", "title", "tr", "ul",
    }
)  # fmt: skip
_CELLS = frozenset({"td", "th"})


class _HtmlText(HTMLParser):
    """Collects the visible text of a page, a block per paragraph, heading or list item."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skipping: list[str] = []
        self._title: list[str] = []
        self._in_title = False

    def _flush(self) -> None:
        if self._current:
            self.blocks.append("".join(self._current))
            self._current.clear()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIPPED:
            self._skipping.append(tag)
        elif tag in _BLOCK:
            self._flush()
        elif tag in _CELLS:
            self._current.append("; " if self._current else "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>: a break; a void element of a skipped kind opens nothing to close.
        if tag in _BLOCK:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif self._skipping and tag == self._skipping[-1]:
            self._skipping.pop()
        elif tag in _BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)
        elif not self._skipping:
            self._current.append(data)

    def text(self) -> str:
        self._flush()
        title = "".join(self._title).strip()
        blocks = [b for b in self.blocks if b.strip()]
        # A page whose first heading repeats its title says it once.
        if title and not (blocks and blocks[0].strip() == title):
            blocks.insert(0, title)
        return _blocks(blocks)


def _html(text: str) -> str:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return parser.text()


# -- CSV --------------------------------------------------------------------------------


def _csv(text: str) -> str:
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:8192], delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error as exc:
        raise DocumentError(f"the CSV cannot be read: {exc}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise DocumentError("the CSV has no rows under its header; send a header and rows")
    header = [_one_line(h) or f"column {i + 1}" for i, h in enumerate(rows[0])]
    lines = []
    for row in rows[1:]:
        pairs = []
        for i, cell in enumerate(row):
            value = _one_line(cell)
            if value:
                column = header[i] if i < len(header) else f"column {i + 1}"
                pairs.append(f"{column}: {value}")
        if pairs:
            lines.append("; ".join(pairs))
    return "\n".join(lines)


def _one_line(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip()
