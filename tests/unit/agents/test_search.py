"""Tokens, sentences, passages and their offsets, ranking, answers, the index cache."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from aia_workers.agents.extraction import DocumentKind, extract_text
from aia_workers.agents.search import (
    CorpusIndex,
    IndexCache,
    build_passages,
    extractive_answer,
    split_sentences,
    tokenize,
)

CORPUS = Path(__file__).parents[2] / "data" / "agents" / "corpus"


def _sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def test_tokens_are_stemmed_lower_case_words_without_stop_words() -> None:
    assert tokenize("The Universities were RUNNING quickly, weren't they? 42 a") == [
        "univers",
        "run",
        "quick",
        "weren",
        "42",
    ]


def test_tokenizing_needs_no_nltk_data(tmp_path: Path) -> None:
    # No punkt, no stop-word corpus: a machine without nltk_data tokenizes alike.
    code = textwrap.dedent(
        """
        import nltk
        nltk.data.path[:] = []
        from aia_workers.agents.search import split_sentences, tokenize
        assert tokenize("Keepers climbed the steps") == ["keeper", "climb", "step"]
        assert len(split_sentences("One here. Two there.")) == 2
        print("ok")
        """
    )
    env = {**os.environ, "NLTK_DATA": str(tmp_path / "none"), "HOME": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_sentences_end_at_stops_but_not_at_abbreviations_initials_or_decimals() -> None:
    text = (
        "Dr. Ellery fitted the lamp in 1931. It cost 3.5 times the old one! Was it worth it? "
        'She said "Yes." J. R. Garrow disagreed, e.g. in his letters. The end'
    )
    assert _sentences(text) == [
        "Dr. Ellery fitted the lamp in 1931.",
        "It cost 3.5 times the old one!",
        "Was it worth it?",
        'She said "Yes."',
        "J. R. Garrow disagreed, e.g. in his letters.",
        "The end",
    ]


def test_a_blank_line_ends_a_sentence_and_a_single_newline_does_not() -> None:
    text = "A heading\n\nA sentence that\nwraps onto two lines. Another."
    assert _sentences(text) == [
        "A heading",
        "A sentence that\nwraps onto two lines.",
        "Another.",
    ]


def test_a_run_on_block_is_cut_into_bounded_pieces() -> None:
    text = " ".join(["word"] * 400)
    spans = split_sentences(text)
    assert len(spans) > 1
    assert all(b - a <= 600 for a, b in spans)
    assert " ".join(text[a:b] for a, b in spans) == text


def test_passages_are_overlapping_windows_with_offsets_into_the_text() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(7))
    passages = build_passages("d1", "doc", text, DocumentKind.TEXT)
    # Windows of three sentences, one shared with the next: 0-2, 2-4, 4-6.
    assert [p.passage_index for p in passages] == [0, 1, 2]
    assert [len(p.sentences) for p in passages] == [3, 3, 3]
    for passage in passages:
        assert text[passage.start : passage.end] == passage.text
        assert passage.text.startswith("Sentence number")
        assert passage.document_id == "d1"
    assert passages[0].sentences[-1] == passages[1].sentences[0]
    assert passages[-1].end == len(text)


def test_a_short_document_is_one_passage() -> None:
    passages = build_passages("d", "doc", "Only one.", DocumentKind.TEXT)
    assert [(p.start, p.end, p.text) for p in passages] == [(0, 9, "Only one.")]


def test_each_csv_row_is_a_passage() -> None:
    text = extract_text((CORPUS / "solar_panels.csv").read_bytes(), DocumentKind.CSV).text
    passages = build_passages("d", "panels", text, DocumentKind.CSV)
    assert len(passages) == 4
    assert passages[0].text.startswith("model: Helio 410;")
    for passage in passages:
        assert text[passage.start : passage.end] == passage.text
        assert passage.sentences == ((passage.start, passage.end),)


def _index(*names: str) -> CorpusIndex:
    passages = []
    for name in names:
        kind = {
            ".md": DocumentKind.MARKDOWN,
            ".txt": DocumentKind.TEXT,
            ".html": DocumentKind.HTML,
            ".csv": DocumentKind.CSV,
        }[Path(name).suffix]
        text = extract_text((CORPUS / name).read_bytes(), kind).text
        passages += build_passages(name, name, text, kind)
    return CorpusIndex(passages)


def test_search_ranks_the_passage_with_the_answer_first() -> None:
    index = _index("sourdough_starter.txt", "urban_beekeeping.txt", "chess_club_minutes.md")
    hits = index.search("How much honey does a hive yield?", 3)
    assert hits[0].passage.document_id == "urban_beekeeping.txt"
    assert "eighteen kilograms" in hits[0].passage.text
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score > 0 for a, b in itertools.pairwise(hits))


def test_a_question_matching_nothing_finds_nothing() -> None:
    index = _index("sourdough_starter.txt")
    assert index.search("quantum chromodynamics", 5) == []
    assert index.search("the of and", 5) == []
    assert CorpusIndex([]).search("honey", 5) == []


def test_the_answer_is_the_best_sentences_cited_by_offsets() -> None:
    index = _index("sourdough_starter.txt", "urban_beekeeping.txt", "fenwick_water_report.txt")
    question = "How often does a sourdough starter need feeding each day?"
    hits = index.search(question, 5)
    answer = extractive_answer(question, hits, sentences=2)
    assert answer.method == "extractive"
    assert len(answer.sentences) == 2
    first = answer.sentences[0]
    assert first.text.startswith("Feed the starter twice a day")
    assert first.document_id == "sourdough_starter.txt"
    text = extract_text((CORPUS / "sourdough_starter.txt").read_bytes(), DocumentKind.TEXT).text
    assert text[first.start : first.end] == first.text
    assert answer.text.startswith("Feed the starter twice a day")
    assert answer.sentences[0].score >= answer.sentences[1].score


def test_no_hits_no_answer() -> None:
    answer = extractive_answer("anything", [], sentences=3)
    assert (answer.text, answer.sentences) == ("", ())


def test_the_cache_keeps_the_newest_version_and_the_most_recently_used() -> None:
    cache = IndexCache(2)
    a1, a2, b, c = (CorpusIndex([]) for _ in range(4))
    cache.put(("t", "a", 1), a1)
    cache.put(("t", "a", 2), a2)
    # The older version of the same corpus is dropped at once.
    assert cache.get(("t", "a", 1)) is None
    assert cache.get(("t", "a", 2)) is a2
    cache.put(("t", "b", 1), b)
    assert cache.get(("t", "a", 2)) is a2
    cache.put(("t", "c", 1), c)
    # b was the least recently used.
    assert cache.get(("t", "b", 1)) is None
    assert len(cache) == 2


def test_the_research_type_module_is_light() -> None:
    code = (
        "import sys, aia_workers.agents.builtin.research as r;"
        "r.ResearchAgent.schemas();"
        "heavy = {'bm25s', 'nltk', 'sklearn', 'numpy', 'scipy', 'sqlalchemy'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
