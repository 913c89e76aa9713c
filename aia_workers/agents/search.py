"""Passages of a corpus, their BM25 index, and the best sentences to answer a question.

Ranking is BM25 (Lucene's variant) by ``bm25s``: it is maintained, small (numpy
and scipy, both here already), and scores from a sparse matrix built once per
corpus version, so a question costs a few sparse lookups rather than a pass over
every passage. ``rank-bm25`` has not had a release since 2022, and scikit-learn's
TF-IDF lacks BM25's length normalization and term saturation, which matter for
passages of unequal length.

Tokens come from NLTK pieces that need no downloaded data: a regular expression
tokenizer and the Snowball stemmer, with scikit-learn's English stop words
removed. Sentences are split by a regular expression that knows common
abbreviations and initials (no punkt model), and a passage is a window of a few
sentences overlapping the next by one, so an answer that straddles two windows
is whole in one of them.

Heavy: import it from a run, not from an agent type's module.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

import bm25s
import numpy as np
from nltk.stem.snowball import SnowballStemmer
from nltk.tokenize import RegexpTokenizer
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from aia_workers.agents.corpora import (
    CorpusContents,
    CorpusNotFound,
    CorpusRepository,
    load_contents,
)
from aia_workers.agents.extraction import DocumentKind

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from aia_workers.ml.artifacts import ArtifactStore

__all__ = [
    "Answer",
    "AnswerSentence",
    "AnswerWriter",
    "CorpusIndex",
    "Hit",
    "IndexCache",
    "Passage",
    "Span",
    "build_passages",
    "corpus_index",
    "extractive_answer",
    "process_cache",
    "split_sentences",
    "tokenize",
]

# Sentences per passage, and how far the window moves: one sentence of overlap.
PASSAGE_SENTENCES = 3
PASSAGE_STRIDE = 2
# A "sentence" longer than this (a list with no full stops) is cut at a space.
MAX_SENTENCE_CHARS = 600

Span = tuple[int, int]

# -- tokens -----------------------------------------------------------------------------

_TOKENIZER = RegexpTokenizer(r"[^\W_]+")
_STEMMER = SnowballStemmer("english")
_STOP = frozenset(ENGLISH_STOP_WORDS)


@lru_cache(maxsize=65_536)
def _stem(word: str) -> str:
    return str(_STEMMER.stem(word))


def tokenize(text: str) -> list[str]:
    """Stemmed, lower-cased words of ``text`` without stop words or single letters."""
    return [
        _stem(word)
        for word in _TOKENIZER.tokenize(text.lower())
        if word not in _STOP and (len(word) > 1 or word.isdigit())
    ]


# -- sentences --------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    (
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "cf",
        "al", "approx", "dept", "est", "fig", "figs", "no", "nos", "vol", "inc", "ltd", "co",
        "corp", "llc", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
        "nov", "dec", "mon", "tue", "wed", "thu", "fri", "sat", "sun", "u.s", "u.k", "a.m",
        "p.m", "ph.d", "gen", "col", "lt", "sgt", "capt", "rev", "hon", "mt", "ave", "blvd",
        "rd",
    )
)  # fmt: skip
_BLOCK_BREAK = re.compile(r"\n[ \t]*\n\s*")
# A full stop, question or exclamation mark (closing quotes or brackets after it)
# followed by white space: a possible end of a sentence.
_CLOSERS = "\"'\u201d\u2019)\\]"
_OPENERS = "\"'\u201c\u2018(\\["
_END = re.compile(f"[.!?\u2026]+[{_CLOSERS}]*(?=\\s)")
_NEXT_STARTS = re.compile(f"\\s+[{_OPENERS}]?[A-Z0-9]")
_ENDS_SENTENCE = re.compile(f"[.!?\u2026][{_CLOSERS}]*$")
_LAST_WORD = re.compile(f"([\\w.]+)[.!?\u2026]+[{_CLOSERS}]*$")


def _is_boundary(text: str, end: int, block_end: int) -> bool:
    """Whether the punctuation ending at ``end`` closes a sentence."""
    follows = _NEXT_STARTS.match(text, end, block_end)
    if follows is None:
        return False
    word = _LAST_WORD.search(text, max(0, end - 40), end)
    if word is None:
        return True
    last = word.group(1).lower().rstrip(".")
    if text[end - 1] != ".":
        return True
    # "Dr. Lee", "e.g. Paris", "J. R. Tolkien": not ends of sentences.
    return last not in _ABBREVIATIONS and not (len(last) == 1 and last.isalpha())


def _blocks(text: str) -> Iterator[Span]:
    start = 0
    for brk in _BLOCK_BREAK.finditer(text):
        yield start, brk.start()
        start = brk.end()
    yield start, len(text)


def _trimmed(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _capped(text: str, span: Span) -> Iterator[Span]:
    start, end = span
    while end - start > MAX_SENTENCE_CHARS:
        cut = text.rfind(" ", start, start + MAX_SENTENCE_CHARS)
        cut = cut if cut > start else start + MAX_SENTENCE_CHARS
        piece = _trimmed(text, start, cut)
        if piece:
            yield piece
        start = cut
    piece = _trimmed(text, start, end)
    if piece:
        yield piece


def split_sentences(text: str) -> list[Span]:
    """The sentences of ``text`` as (start, end) character offsets, trimmed of white space.

    A blank line always ends a sentence (headings, list items and table rows
    are blocks of their own in extracted text).
    """
    spans: list[Span] = []
    for block_start, block_end in _blocks(text):
        start = block_start
        for match in _END.finditer(text, block_start, block_end):
            if _is_boundary(text, match.end(), block_end):
                spans.extend(_capped(text, (start, match.end())))
                start = match.end()
        spans.extend(_capped(text, (start, block_end)))
    return spans


# -- passages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Passage:
    """A window of sentences of one document; offsets into the document's extracted text."""

    document_id: str
    document: str
    passage_index: int
    start: int
    end: int
    text: str
    sentences: tuple[Span, ...]
    document_text: str

    def sentence_text(self, span: Span) -> str:
        return self.document_text[span[0] : span[1]]


def build_passages(
    document_id: str,
    document: str,
    text: str,
    kind: DocumentKind,
    *,
    sentences: int = PASSAGE_SENTENCES,
    stride: int = PASSAGE_STRIDE,
) -> list[Passage]:
    """The passages of one document, numbered from 0 in reading order.

    A CSV's rows are passages (and sentences) of their own; other text is cut
    into windows of ``sentences`` sentences, each starting ``stride`` after the last.
    """
    if kind is DocumentKind.CSV:
        spans: list[Span] = []
        offset = 0
        for line in text.split("\n"):
            trimmed = _trimmed(text, offset, offset + len(line))
            if trimmed:
                spans.append(trimmed)
            offset += len(line) + 1
        windows = [[span] for span in spans]
    else:
        spans = split_sentences(text)
        windows = []
        first = 0
        while first < len(spans):
            last = min(first + sentences, len(spans))
            windows.append(spans[first:last])
            if last >= len(spans):
                break
            first += stride
    return [
        Passage(
            document_id=document_id,
            document=document,
            passage_index=i,
            start=window[0][0],
            end=window[-1][1],
            text=text[window[0][0] : window[-1][1]],
            sentences=tuple(window),
            document_text=text,
        )
        for i, window in enumerate(windows)
    ]


# -- the index --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    """A passage ranked for a question: 1 is the best."""

    rank: int
    score: float
    passage: Passage


def _bm25(token_lists: list[list[str]]) -> bm25s.BM25:
    retriever = bm25s.BM25()
    retriever.index(token_lists, show_progress=False)
    return retriever


def _ranked(scores: np.ndarray, limit: int) -> list[int]:
    """Indices of the ``limit`` best positive scores, ties in the order given."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    return [int(i) for i in order[:limit] if scores[i] > 0]


class CorpusIndex:
    """The BM25 index of every passage of one version of a corpus."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        self.passages = list(passages)
        self._retriever = _bm25([tokenize(p.text) for p in self.passages]) if passages else None

    @classmethod
    def of(cls, contents: CorpusContents) -> CorpusIndex:
        passages = [
            passage
            for doc in contents.documents
            for passage in build_passages(doc.id, doc.name, doc.text, doc.kind)
        ]
        return cls(passages)

    def search(self, question: str, top_k: int) -> list[Hit]:
        """The ``top_k`` passages that best match ``question`` (only those matching at all)."""
        terms = tokenize(question)
        if self._retriever is None or not terms:
            return []
        scores = self._retriever.get_scores(terms)
        return [
            Hit(rank, float(scores[i]), self.passages[i])
            for rank, i in enumerate(_ranked(scores, top_k), start=1)
        ]


# -- answers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerSentence:
    """One sentence of an answer and where it is: a document and offsets into its text."""

    text: str
    document_id: str
    document: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    sentences: tuple[AnswerSentence, ...]
    method: str


class AnswerWriter(Protocol):
    """Writes the answer to ``question`` from ranked passages, citing each sentence it uses.

    ``extractive_answer`` is the one AIA ships; a language-model writer takes the
    same arguments and says so in ``Answer.method``.
    """

    def __call__(self, question: str, hits: Sequence[Hit], *, sentences: int) -> Answer: ...


def extractive_answer(question: str, hits: Sequence[Hit], *, sentences: int) -> Answer:
    """The ``sentences`` sentences of the ranked passages that best match ``question``.

    Each candidate sentence is scored by BM25 over the candidates alone, so a
    sentence holding the question's rarer words wins over one that merely
    shares its commonest, weighed by how well its passage ranked (a sentence of
    the best passage counts in full, one of a passage half as good half as
    much). A heading (a line with no closing punctuation among full sentences)
    counts half: it names a topic rather than answering. Ties go to the
    better-ranked passage; the answer keeps the order of relevance.
    """
    terms = tokenize(question)
    if not hits or not terms:
        return Answer("", (), "extractive")
    best = max(hit.score for hit in hits)
    seen: set[tuple[str, Span]] = set()
    candidates: list[tuple[Passage, Span, float]] = []
    for hit in hits:
        for span in hit.passage.sentences:
            key = (hit.passage.document_id, span)
            if key in seen:
                continue
            seen.add(key)
            weight = hit.score / best if best > 0 else 1.0
            if len(hit.passage.sentences) > 1 and not _ENDS_SENTENCE.search(
                hit.passage.sentence_text(span)
            ):
                weight *= 0.5
            candidates.append((hit.passage, span, weight))
    raw = _bm25([tokenize(p.sentence_text(s)) for p, s, _ in candidates]).get_scores(terms)
    scores = raw * np.array([w for _, _, w in candidates], dtype=raw.dtype)
    chosen = []
    for i in _ranked(scores, sentences):
        passage, (start, end), _ = candidates[i]
        chosen.append(
            AnswerSentence(
                text=passage.sentence_text((start, end)),
                document_id=passage.document_id,
                document=passage.document,
                start=start,
                end=end,
                score=float(scores[i]),
            )
        )
    text = " ".join(re.sub(r"\s+", " ", s.text) for s in chosen)
    return Answer(text, tuple(chosen), "extractive")


# -- one index per corpus version, per process ------------------------------------------


class IndexCache:
    """Indexes by (tenant, corpus id, version), the most recently used kept, up to ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str, int], CorpusIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, int]) -> CorpusIndex | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, str, int], index: CorpusIndex) -> None:
        with self._lock:
            # An older version of the same corpus will not be asked for again.
            for old in [k for k in self._items if k[:2] == key[:2] and k != key]:
                del self._items[old]
            self._items[key] = index
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


_process_cache: IndexCache | None = None
_process_lock = threading.Lock()


def process_cache(size: int) -> IndexCache:
    """This process's index cache, made on first use (not at import: prefork children)."""
    global _process_cache
    with _process_lock:
        if _process_cache is None:
            _process_cache = IndexCache(size)
        return _process_cache


def corpus_index(
    sessions: sessionmaker[Session],
    artifacts: ArtifactStore,
    tenant: str,
    corpus_id: str,
    cache: IndexCache,
    on_build: Callable[[int], None] | None = None,
) -> tuple[CorpusIndex, int, bool]:
    """The index of the corpus's current version: (index, version, whether it was cached).

    Reading the version costs one query; the documents are read and indexed
    only when this process has no index of that version. ``on_build`` is told
    how many documents are being indexed before the work starts.
    """
    with sessions() as session:
        corpus = CorpusRepository(session, tenant).get(corpus_id)
        if corpus is None:
            raise CorpusNotFound(corpus_id)
        key = (tenant, corpus_id, corpus.version)
    found = cache.get(key)
    if found is not None:
        return found, key[2], True
    with sessions.begin() as session:
        corpus = CorpusRepository(session, tenant).get(corpus_id, hold=True)
        if corpus is None:
            raise CorpusNotFound(corpus_id)
        contents = load_contents(session, artifacts, tenant, corpus)
    if on_build is not None:
        on_build(len(contents.documents))
    index = CorpusIndex.of(contents)
    cache.put((tenant, corpus_id, contents.version), index)
    return index, contents.version, False
