"""The text of each kind of corpus document, and the files a corpus refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from aia_workers.agents.extraction import (
    DocumentError,
    DocumentKind,
    UnsupportedDocumentType,
    document_kind,
    extract_text,
)

CORPUS = Path(__file__).parents[2] / "data" / "agents" / "corpus"


@pytest.mark.parametrize(
    ("media_type", "name", "kind"),
    [
        ("text/plain; charset=utf-8", "notes", DocumentKind.TEXT),
        ("text/markdown", "x", DocumentKind.MARKDOWN),
        ("text/x-markdown", "x", DocumentKind.MARKDOWN),
        ("TEXT/HTML", "x", DocumentKind.HTML),
        ("application/csv", "x", DocumentKind.CSV),
        ("application/octet-stream", "minutes.md", DocumentKind.MARKDOWN),
        ("", "page.HTM", DocumentKind.HTML),
    ],
)
def test_the_kind_comes_from_the_media_type_or_else_the_extension(
    media_type: str, name: str, kind: DocumentKind
) -> None:
    assert document_kind(media_type, name) is kind


@pytest.mark.parametrize(
    ("media_type", "name"),
    [("application/pdf", "report.pdf"), ("application/pdf", "looks.txt"), ("", "data.bin")],
)
def test_other_kinds_are_refused_naming_the_accepted_ones(media_type: str, name: str) -> None:
    with pytest.raises(UnsupportedDocumentType, match="text/markdown"):
        document_kind(media_type, name)


def test_plain_text_keeps_its_lines_and_drops_trailing_space() -> None:
    text = extract_text(
        b"\xef\xbb\xbfFirst line.  \r\nSecond line.\r\n\r\n\r\n\r\nNext.", DocumentKind.TEXT
    )
    assert text.text == "First line.\nSecond line.\n\nNext."


def test_markdown_loses_its_markup_and_keeps_its_blocks() -> None:
    source = (CORPUS / "kestrel_point_lighthouse.md").read_bytes()
    text = extract_text(source, DocumentKind.MARKDOWN).text
    blocks = text.split("\n\n")
    assert blocks[0] == "Kestrel Point Lighthouse"
    assert "The lamp" in blocks
    # List items are blocks of their own, without their bullets.
    assert "Thomas Garrow kept the light from 1887 to 1910." in blocks
    # A paragraph's wrapped lines are joined.
    assert (
        "The lamp was converted from paraffin to electric power in 1931 by the engineer "
        "Maud Ellery" in text
    )
    assert "#" not in text
    assert "*" not in text


def test_markdown_inline_markup_tables_and_code() -> None:
    source = (
        b"Read **the guide** and _then_ the [manual](http://example.org) or `run_job`.\n"
        b"snake_case_name stays.\n\n"
        b"| col | value |\n| --- | --- |\n| a | 1 |\n\n"
        b"```python\nprint('hi')\n```\n"
    )
    blocks = extract_text(source, DocumentKind.MARKDOWN).text.split("\n\n")
    assert blocks[0] == ("Read the guide and then the manual or run_job. snake_case_name stays.")
    assert blocks[1:] == ["col; value", "a; 1", "print('hi')"]


def test_html_keeps_visible_text_in_blocks_and_drops_scripts_and_styles() -> None:
    source = (CORPUS / "copper_kettle_tea.html").read_bytes()
    text = extract_text(source, DocumentKind.HTML).text
    blocks = text.split("\n\n")
    assert blocks[0] == "The Copper Kettle Tea Company"
    assert "Returns and refunds" in blocks
    assert (
        "Unopened tins can be returned within 45 days for a full refund. Opened tea cannot "
        "be taken back" in text
    )
    # Character references are decoded; list items are blocks.
    assert "on Weaver's Lane" in text
    assert "Green tea: water at 80 °C, two minutes." in blocks
    for hidden in ("font-family", "dataLayer", "track("):
        assert hidden not in text


def test_html_without_a_closed_head_still_gives_its_body() -> None:
    source = b"<html><head><title>T</title><body><p>One.</p><p>Two.</p>"
    assert extract_text(source, DocumentKind.HTML).text == "T\n\nOne.\n\nTwo."


def test_csv_rows_become_lines_of_column_value_pairs() -> None:
    source = (CORPUS / "millbrook_timetable.csv").read_bytes()
    lines = extract_text(source, DocumentKind.CSV).text.split("\n")
    assert len(lines) == 5
    assert lines[0] == (
        "route: Millbrook to Saltmarsh; departs: 07:42; arrives: 08:19; platform: 4; "
        "notes: bicycles carried free"
    )
    # An empty cell is left out rather than said as "notes: ".
    assert lines[1].endswith("platform: 2")


def test_csv_with_semicolons_quoted_newlines_and_extra_cells() -> None:
    source = b'name;note\n"Ada";"two\nlines"\nBo;x;extra\n'
    lines = extract_text(source, DocumentKind.CSV).text.split("\n")
    assert lines == ["name: Ada; note: two lines", "name: Bo; note: x; column 3: extra"]


@pytest.mark.parametrize(
    ("data", "kind", "message"),
    [
        (b"", DocumentKind.TEXT, "empty"),
        (b"  \n\t ", DocumentKind.MARKDOWN, "empty"),
        (b"caf\xe9 au lait", DocumentKind.TEXT, "not UTF-8"),
        (b"abc\x00def", DocumentKind.TEXT, "binary"),
        (b"<script>var x = 1;</script>", DocumentKind.HTML, "no text"),
        (b"only,a,header\n", DocumentKind.CSV, "no rows"),
    ],
)
def test_a_document_without_usable_text_is_refused(
    data: bytes, kind: DocumentKind, message: str
) -> None:
    with pytest.raises(DocumentError, match=message):
        extract_text(data, kind)


def test_every_shipped_document_extracts() -> None:
    files = sorted(CORPUS.iterdir())
    assert 8 <= len(files) <= 15
    kinds = {document_kind("", f.name) for f in files}
    assert kinds == set(DocumentKind)
    for file in files:
        assert extract_text(file.read_bytes(), document_kind("", file.name)).text
